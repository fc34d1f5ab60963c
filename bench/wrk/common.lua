-- Shared by issue.lua and fixed.lua (loaded with dofile): measurement window, request cap, pacing, report.
--
-- Environment (set by bench/run.py):
--   BENCH_WINDOW_START, BENCH_WINDOW_END  epoch seconds; responses completed inside are counted, so requests/s
--                                         and CPU/request use the same interval (bench/run.py samples /proc then)
--   BENCH_MAX_REQUESTS                    stop a thread after this many responses (wrk itself bounds duration)
--   BENCH_DELAY_MS                        pacing: wait this long before each request on a connection
--   BENCH_RESULT                          where done() writes its JSON summary
local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local ts = ffi.new("bench_timespec")

function bench_now()
   ffi.C.clock_gettime(0, ts)  -- CLOCK_REALTIME, comparable with Python's time.time()
   return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local window_start = tonumber(os.getenv("BENCH_WINDOW_START") or "0")
local window_end = tonumber(os.getenv("BENCH_WINDOW_END") or "1e18")
local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "1e12")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

-- Thread globals read back by done() through thread:get().
responses = 0
in_window = 0
bad_status = 0
capped = 0

function response(status, headers, body)
   responses = responses + 1
   if status ~= 200 then
      bad_status = bad_status + 1
   end
   local t = bench_now()
   if t >= window_start and t < window_end then
      in_window = in_window + 1
   end
   if responses >= max_requests and capped == 0 then
      capped = 1
      wrk.thread:stop()
   end
end

if delay_ms > 0 then
   function delay()
      return delay_ms
   end
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local win, bad, cap = 0, 0, 0
   for _, thread in ipairs(threads) do
      win = win + thread:get("in_window")
      bad = bad + thread:get("bad_status")
      cap = cap + thread:get("capped")
   end
   local e = summary.errors
   local out = io.open(os.getenv("BENCH_RESULT"), "w")
   out:write(string.format(
      '{"requests": %d, "duration_us": %d, "in_window": %d, "bad_status": %d, "capped": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "mean": %.1f, "max": %d}}\n',
      summary.requests, summary.duration, win, bad, cap,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
   out:close()
end
