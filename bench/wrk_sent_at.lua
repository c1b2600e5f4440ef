-- bench/wrk.lua plus the header every SDK request carries, `EIS-Sent-At` (the value of
-- $EIS_SENT_AT, fixed for the run): the load generator's reference for bench/sdk_throughput.py,
-- so that the server does the same work for both (a request with EIS-Sent-At stores, and
-- hands off to SQS, `sent_at` and `adjusted_timestamp` with every event).
-- $EIS_BENCH_DIR is the bench/ folder (wrk runs scripts from its own working directory).
dofile(os.getenv("EIS_BENCH_DIR") .. "/wrk.lua")
wrk.headers["EIS-Sent-At"] = os.getenv("EIS_SENT_AT")
