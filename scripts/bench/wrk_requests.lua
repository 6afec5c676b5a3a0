-- wrk script for the ingest benchmarks: every request is a distinct, pre-signed raw HTTP
-- request read from a file, so each one is a new Stripe event (no duplicates, no Lua work
-- per request beyond returning a string).
--
-- Usage: wrk -t T -c C -d D -s wrk_requests.lua URL -- PREFIX
--   PREFIX.<thread index>      raw requests, concatenated
--   PREFIX.<thread index>.len  one byte length per line
-- Thread i sends its own file in order; if it runs out it starts again (then the server
-- answers duplicate:true and the `wrapped` count in the summary says so).
-- done() prints one line `BENCHJSON {...}` that the driver parses.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests = {}
local n = 0
local i = 0
ok = 0
dup = 0
bad = 0
wrapped = 0

function init(args)
  local prefix = args[1] .. "." .. tid
  local f = assert(io.open(prefix, "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  for line in io.lines(prefix .. ".len") do
    local len = tonumber(line)
    n = n + 1
    requests[n] = string.sub(data, pos, pos + len - 1)
    pos = pos + len
  end
  data = nil
  collectgarbage()
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return requests[i]
end

function response(status, headers, body)
  if status == 200 then
    if string.find(body, '"duplicate":true', 1, true) then
      dup = dup + 1
    else
      ok = ok + 1
    end
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local tok, tdup, tbad, twrapped = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    tok = tok + t:get("ok")
    tdup = tdup + t:get("dup")
    tbad = tbad + t:get("bad")
    twrapped = twrapped + t:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"ok":%d,"dup":%d,"bad":%d,"wrapped":%d,'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    tok, tdup, tbad, twrapped,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
