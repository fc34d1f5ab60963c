-- wrk script: the same body on every request (BENCH_BODY). Used for the reference endpoints (an STS request can
-- not be reused: its Timestamp must stay fresh). Headers come from wrk's -H options; see common.lua for the rest
-- of the environment.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

do
   local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
   wrk.method = "POST"
   wrk.body = file:read("*a")
   file:close()
end
