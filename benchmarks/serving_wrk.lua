-- wrk script of bench_serving.py: wrk -s serving_wrk.lua URL -- LINES_FILE RUN_TAG
--
-- Rotates over the lines of LINES_FILE. A line is either a GET path, or a GET path, a tab and the
-- JSON body of an event: that event is POSTed to /v1/events and the GET follows it pipelined on
-- the same connection, so the server answers it after the event (a live visitor's pair).
-- An empty path: the event alone. "%N%" in a line becomes a token unique to the request (new
-- guest sessions, event ids).
-- At the end one line "WRKJSON {...}" carries the counts and latency percentiles.

local lines = {}
local counter = 0
local prefix = ""
local threads = {}
degraded = 0 -- answers flagged degraded (a fallback), per thread; summed in done()

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_number", #threads)
end

function init(args)
  for line in io.lines(args[1]) do
    lines[#lines + 1] = line
  end
  prefix = (args[2] or "run") .. "-" .. tostring(thread_number or 0) .. "-"
end

function request()
  counter = counter + 1
  local line = lines[(counter - 1) % #lines + 1]:gsub("%%N%%", prefix .. counter)
  local path, body = line:match("^([^\t]*)\t(.*)$")
  if path == nil then
    return wrk.format("GET", line)
  end
  local post = wrk.format("POST", "/v1/events", { ["Content-Type"] = "application/json" }, body)
  if path == "" then
    return post -- the event alone
  end
  return post .. wrk.format("GET", path)
end

function response(status, headers, body)
  if body:find('"degraded":true', 1, true) then
    degraded = degraded + 1
  end
end

function done(summary, latency, requests)
  local flagged = 0
  for _, thread in ipairs(threads) do
    flagged = flagged + thread:get("degraded")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, '
      .. '"degraded": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), flagged
  ))
end
