-- wrk script of bench/inbound.py: cycles through pre-signed inbound webhooks.
--
--   wrk -t1 -c8 -d10s -s bench/inbound.lua http://127.0.0.1:PORT -- REQUESTS_FILE [SKIP]
--
-- REQUESTS_FILE has one request a line: the X-Twilio-Signature, a tab, the form-encoded body.
-- The first SKIP lines (default 0) are passed over: they were sent in an earlier round.
-- Thread k of n takes the next lines k, k+n, k+2n, ... so that no two threads send the same
-- MessageSid;
-- a thread that runs out starts over (its "wrapped" count says so: the gateway then answers
-- duplicates, which are cheaper, and the figure is not valid). done() prints one line,
-- "BENCH {json}", that bench/inbound.py reads.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("index", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   local skip = tonumber(args[2] or "0")
   local total = counter
   if total == 0 then total = 1 end
   requests = {}
   local n = 0
   local me = index or 0
   for line in io.lines(path) do
      if n >= skip and (n - skip) % total == me then
         local tab = line:find("\t", 1, true)
         local signature = line:sub(1, tab - 1)
         local body = line:sub(tab + 1)
         local headers = {
            ["Content-Type"] = "application/x-www-form-urlencoded",
            ["X-Twilio-Signature"] = signature,
         }
         requests[#requests + 1] = wrk.format("POST", "/webhooks/twilio/inbound", headers, body)
      end
      n = n + 1
   end
   position = 0
   wrapped = 0
end

function request()
   position = position + 1
   if position > #requests then
      position = 1
      wrapped = wrapped + 1
   end
   return requests[position]
end

function done(summary, latency, requests_)
   local wraps = 0
   for _, thread in ipairs(threads) do
      wraps = wraps + (thread:get("wrapped") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
      '"write_errors": %d, "status_errors": %d, "timeouts": %d, "wrapped": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, wraps,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean))
end
