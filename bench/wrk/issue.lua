-- wrk script: one Issue request per call with a fresh Nonce and fresh Created/Expires (the replay cache refuses
-- a nonce it has seen, and Created must be within the 300 s freshness window).
--
-- Environment: BENCH_TEMPLATE (request body with @@USER@@, @@NONCE@@, @@CREATED@@, @@EXPIRES@@, made by
-- bench/setup_instance.py from the STS's own sample client), BENCH_USERS (comma-separated user names, used in
-- turn), BENCH_LUA_DIR, plus those of common.lua. HTTP headers come from wrk's -H options.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local bit = require("bit")

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(bytes)
   local out = {}
   for i = 1, #bytes, 3 do
      local a, b, c = bytes:byte(i, i + 2)
      local n = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), c or 0)
      local chars = {}
      for k = 1, 4 do
         local idx = bit.band(bit.rshift(n, 6 * (4 - k)), 63) + 1
         chars[k] = B64:sub(idx, idx)
      end
      if not b then chars[3] = "=" end
      if not c then chars[4] = "=" end
      out[#out + 1] = table.concat(chars)
   end
   return table.concat(out)
end

-- The template as literal pieces and placeholder names, split once.
local pieces = {}
do
   local file = assert(io.open(os.getenv("BENCH_TEMPLATE"), "rb"))
   local text = file:read("*a")
   file:close()
   local pos = 1
   while true do
      local s, e, name = text:find("@@(%u+)@@", pos)
      if not s then break end
      pieces[#pieces + 1] = text:sub(pos, s - 1)
      pieces[#pieces + 1] = { name }
      pos = e + 1
   end
   pieces[#pieces + 1] = text:sub(pos)
end

local users = {}
for name in (os.getenv("BENCH_USERS") or ""):gmatch("[^,]+") do
   users[#users + 1] = name
end

-- Nonce = 8 random bytes per thread (from /dev/urandom) + an 8-byte counter: unique across the whole run.
local prefix
do
   local urandom = assert(io.open("/dev/urandom", "rb"))
   prefix = urandom:read(8)
   urandom:close()
end
local counter = 0
local last_second, created, expires = -1, nil, nil

function request()
   counter = counter + 1
   local now = os.time()
   if now ~= last_second then
      last_second = now
      created = os.date("!%Y-%m-%dT%H:%M:%SZ", now)
      expires = os.date("!%Y-%m-%dT%H:%M:%SZ", now + 300)
   end
   local c, tail = counter, {}
   for k = 8, 1, -1 do
      tail[k] = string.char(c % 256)
      c = math.floor(c / 256)
   end
   local values = {
      USER = users[(counter - 1) % #users + 1],
      NONCE = b64(prefix .. table.concat(tail)),
      CREATED = created,
      EXPIRES = expires,
   }
   local parts = {}
   for i, piece in ipairs(pieces) do
      parts[i] = type(piece) == "table" and values[piece[1]] or piece
   end
   return wrk.format("POST", nil, nil, table.concat(parts))
end
