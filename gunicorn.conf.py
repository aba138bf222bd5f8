# gunicorn reads this file from the working directory: mask phone numbers in its access log.
logger_class = "gateway.logs.GunicornLogger"
