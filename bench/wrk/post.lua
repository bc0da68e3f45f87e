-- wrk script: POST the chat completion body, rotating Authorization through the token file.
-- BENCH_TOKENS names a file with one token per line (empty for no Authorization header);
-- BENCH_BODY is the JSON body. Requests are formatted once, in init, so the hot loop only
-- hands out prebuilt strings.
local requests = {}
local counter = 0
local threads = 0

-- Runs in the main state once per thread: each thread starts at a different user, so they do
-- not walk the users in lockstep.
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
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
  if #tokens == 0 then tokens[1] = false end
  for i, token in ipairs(tokens) do
    local headers = { ["Content-Type"] = "application/json", ["Host"] = wrk.headers["Host"] }
    if token then headers["Authorization"] = "Bearer " .. token end
    requests[i] = wrk.format("POST", nil, headers, body)
  end
  counter = (offset or 0) % #requests
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end
