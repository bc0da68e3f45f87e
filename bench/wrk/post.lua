-- wrk script: POST the chat completion body, rotating Authorization through the token file.
-- BENCH_TOKENS names a file with one token per line (empty for no Authorization header; a
-- line "-" sends that request without one); BENCH_BODY is the JSON body. Requests are
-- formatted once, in init, so the hot loop only hands out prebuilt strings.
-- BENCH_STATUSES=1 also counts responses by status and prints "status <code> <count>" lines
-- at the end (the mixed-traffic phase; it costs a Lua call per response, so the throughput
-- phases leave it off).
local requests = {}
local counter = 0
local threads = {}

-- Runs in the main state once per thread: each thread starts at a different user, so they do
-- not walk the users in lockstep.
function setup(thread)
  thread:set("offset", #threads * 7919)
  threads[#threads + 1] = thread
end

function init(args)
  local body = os.getenv("BENCH_BODY")
  local path = os.getenv("BENCH_TOKENS")
  local tokens = {}
  if path ~= nil and path ~= "" then
    for line in io.lines(path) do
      if line ~= "" then tokens[#tokens + 1] = line end
    end
  end
  if #tokens == 0 then tokens[1] = "-" end
  for i, token in ipairs(tokens) do
    local headers = { ["Content-Type"] = "application/json", ["Host"] = wrk.headers["Host"] }
    if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
    requests[i] = wrk.format("POST", nil, headers, body)
  end
  counter = (offset or 0) % #requests
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

if os.getenv("BENCH_STATUSES") == "1" then
  statuses = {}

  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end

  -- Runs in the main state: add up every thread's counts.
  function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses") or {}) do
        total[status] = (total[status] or 0) + count
      end
    end
    for status, count in pairs(total) do
      io.write(string.format("status %d %d\n", status, count))
    end
  end
end
