package redisstore

import "github.com/redis/go-redis/v9"

// The store's Lua scripts. Every write is one script, so Redis applies it
// whole or not at all: a script runs alone (no other command interleaves),
// and Redis 7 replicates and appends to the AOF a script's writes as one
// MULTI/EXEC block, which a replica or a restart after a crash applies
// whole or drops whole. The writing scripts check every precondition before
// their first write, and every write after that is a command that cannot
// fail on the store's own keys, so no script stops half-way.
//
// The scripts compute most key names (old index values are only known
// inside the script) rather than declaring them. Redis Cluster allows that
// as long as every key a script touches is in the slot of the keys it
// declared: each script is sent with the store's prefix as its one key, and
// on a cluster the prefix carries a hash tag, so every key of the store is
// in that slot (see the package comment). The shebang flags say no-writes
// on the readers, so they may run while the server is refusing writes.
// Scripts with a shebang need Redis 7.0 or later; Redis checks memory
// before such a script starts, so a full server refuses a whole Change
// rather than half of one.

// prelude is shared by the writing scripts: key names and the index
// bookkeeping of payments and advices.
const prelude = `
local P = ARGV[1]
local ZERO = '` + zeroScore + `'
local PF = {'ret', 'req', 'tran', 'rrn', 'stan', 'part', 'mer', 'ter', 'st', 'out'}
local PIX = {ret = 'p:ret:', req = 'p:req:', tran = 'p:tran:', rrn = 'p:rrn:', stan = 'p:stan:',
  part = 'p:part:', mer = 'p:mer:', ter = 'p:ter:', st = 'p:st:', out = 'p:out:'}
local AF = {'id', 'pk', 'part', 'st'}
local AIX = {id = 'a:id:', pk = 'a:pay:', part = 'a:part:', st = 'a:st:'}
-- The advice states whose queue statistics are kept: one sorted set per
-- state and partner, scored by QueuedAt.
local QS = {PENDING = true, HELD = true, DEAD = true, OPERATOR = true}
local function qkey(st, part) return P .. 'q:' .. st .. ':' .. part end

-- clock is the server's time in milliseconds. It only times housekeeping
-- (retention, the life of unused QR codes); business times come in records.
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- payFields returns a stored payment's version and indexed values, or nil.
local function payFields(key)
  local f = redis.call('HMGET', P .. 'pay:' .. key, 'v', 'cu', unpack(PF))
  if not f[1] then return nil end
  local r = {v = f[1], cu = f[2]}
  for j, name in ipairs(PF) do r[name] = f[j + 2] or '' end
  return r
end

local function unindexPayment(key, old)
  redis.call('ZREM', P .. 'pc', key)
  for _, name in ipairs(PF) do
    if old[name] ~= '' then redis.call('ZREM', P .. PIX[name] .. old[name], key) end
  end
  redis.call('ZREM', P .. 'held', key)
  redis.call('ZREM', P .. 'gc', key)
end

-- advFields returns a stored advice's version and indexed values, or nil.
local function advFields(key)
  local f = redis.call('HMGET', P .. 'adv:' .. key, 'v', 'cu', 'lu', unpack(AF))
  if not f[1] then return nil end
  local r = {v = f[1], cu = f[2], lu = f[3]}
  for j, name in ipairs(AF) do r[name] = f[j + 3] or '' end
  return r
end

local function unindexAdvice(key, old)
  redis.call('ZREM', P .. 'ac', key)
  for _, name in ipairs(AF) do
    if old[name] ~= '' then redis.call('ZREM', P .. AIX[name] .. old[name], key) end
  end
  redis.call('ZREM', P .. 'a:leased', key)
  if old.st == 'PENDING' then
    redis.call('ZREM', P .. 'due:' .. old.part, key)
    redis.call('ZREM', P .. 'due', key)
  end
  if QS[old.st] then redis.call('ZREM', qkey(old.st, old.part), key) end
end

-- qrExpire gives a QR code no payment uses, with its request-id claim and
-- its trace, the life left until it expires plus keep.
local function qrExpire(tran, ret, req, exp, now, keep)
  local ttl = math.max(tonumber(exp) - now, 0) + keep
  redis.call('PEXPIRE', P .. 'qr:' .. tran, ttl)
  redis.call('PEXPIRE', P .. 'qrreq:' .. ret .. '/' .. req, ttl)
  redis.call('PEXPIRE', P .. 'tr:qr/' .. tran, ttl)
end
`

// commitSrc applies one Change. ARGV: prefix, retention ms, keep ms, then
// how many QR codes (0/1), payments (0/1), advices, queue controls (0/1),
// trace entries and rails' records there are, the trace key, then each
// record's fields in the order of QA, PA, AA, CA and RA (see encode.go; a
// rail's record is followed by its secondary keys), then the trace
// entries. It returns {'ok'}, or {record, key, 'dup'|'conflict'} having
// written nothing.
const commitSrc = "#!lua\n" + prelude + `
local retention, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
local nq, np, na, nc, nt = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local nr = tonumber(ARGV[9])
local tk = ARGV[10]
local i = 11
local function take(names)
  local r = {}
  for _, name in ipairs(names) do r[name] = ARGV[i]; i = i + 1 end
  return r
end
local QA = {'tran', 'ver', 'newv', 'd', 'ret', 'req', 'pk', 'exp'}
local PA = {'key', 'ver', 'newv', 'd', 'final', 'held', 'ret', 'req', 'tran', 'rrn', 'stan', 'part', 'mer', 'ter', 'st',
  'amt', 'cu', 'cr', 'hu', 'hr', 'out'}
local AA = {'key', 'ver', 'newv', 'd', 'id', 'pk', 'part', 'st', 'cu', 'cr', 'nu', 'nr', 'lo', 'lu', 'lr', 'qu', 'qr', 'at'}
local CA = {'part', 'ver', 'newv', 'd'}
local RA = {'key', 'ver', 'newv', 'd', 'owner', 'kind', 'rkey', 'due', 'nidx'}
local q, p, advs, ctl, recs = nil, nil, {}, nil, {}
if nq == 1 then q = take(QA) end
if np == 1 then p = take(PA) end
for j = 1, na do advs[j] = take(AA) end
if nc == 1 then ctl = take(CA) end
for j = 1, nr do
  local r = take(RA)
  r.idx = {}
  for k = 1, tonumber(r.nidx) do r.idx[k] = ARGV[i]; i = i + 1 end
  recs[j] = r
end

-- Every check first: a Change that fails one has written nothing.
if q then
  local cur = redis.call('HMGET', P .. 'qr:' .. q.tran, 'v', 'ret', 'req')
  if q.ver == '0' then
    if cur[1] then return {'qr', q.tran, 'dup'} end
  elseif cur[1] ~= q.ver then
    return {'qr', q.tran, 'conflict'}
  end
  if cur[2] ~= q.ret or cur[3] ~= q.req then
    local owner = redis.call('GET', P .. 'qrreq:' .. q.ret .. '/' .. q.req)
    if owner and owner ~= q.tran then return {'qr', q.tran, 'dup'} end
    q.oldret, q.oldreq = cur[2], cur[3]
  end
end
if p then
  p.old = payFields(p.key)
  if p.ver == '0' then
    if p.old then return {'payment', p.key, 'dup'} end
  elseif not p.old or p.old.v ~= p.ver then
    return {'payment', p.key, 'conflict'}
  end
end
for _, a in ipairs(advs) do
  a.old = advFields(a.key)
  if a.ver == '0' then
    if a.old then return {'advice', a.key, 'dup'} end
  elseif not a.old or a.old.v ~= a.ver then
    return {'advice', a.key, 'conflict'}
  end
end
if ctl then
  local v = redis.call('HGET', P .. 'ctl:' .. ctl.part, 'v')
  if ctl.ver == '0' then
    if v then return {'control', ctl.part, 'dup'} end
  elseif v ~= ctl.ver then
    return {'control', ctl.part, 'conflict'}
  end
end
for _, r in ipairs(recs) do
  local cur = redis.call('HMGET', P .. 'rec:' .. r.key, 'v', 'idx')
  if r.ver == '0' then
    if cur[1] then return {'record', r.key, 'dup'} end
  elseif cur[1] ~= r.ver then
    return {'record', r.key, 'conflict'}
  end
  r.oldidx = cur[2] or ''
end

-- The clock is read only by the writes that need it.
local nowMS
local function now()
  if not nowMS then nowMS = clock() end
  return nowMS
end
if q then
  if q.oldret then redis.call('DEL', P .. 'qrreq:' .. q.oldret .. '/' .. q.oldreq) end
  redis.call('HSET', P .. 'qr:' .. q.tran, 'd', q.d, 'v', q.newv, 'ret', q.ret, 'req', q.req, 'pk', q.pk, 'exp', q.exp)
  redis.call('SET', P .. 'qrreq:' .. q.ret .. '/' .. q.req, q.tran)
end
if p then
  local key, old = p.key, p.old
  -- A new creation time moves the payment in every index; otherwise only
  -- the indexes whose value changed are touched.
  local moved = not old or old.cu ~= p.cu
  if old and moved then unindexPayment(key, old) end
  if moved then redis.call('ZADD', P .. 'pc', p.cu, key) end
  for _, name in ipairs(PF) do
    local ov, nv = old and old[name] or '', p[name]
    if moved or ov ~= nv then
      if not moved and ov ~= '' then redis.call('ZREM', P .. PIX[name] .. ov, key) end
      if nv ~= '' then redis.call('ZADD', P .. PIX[name] .. nv, p.cu, key) end
    end
  end
  if p.held == '1' then redis.call('ZADD', P .. 'held', p.hu, key) else redis.call('ZREM', P .. 'held', key) end
  if p.final == '1' then
    redis.call('ZADD', P .. 'gc', 'NX', now() + retention, key)
  else
    redis.call('ZREM', P .. 'gc', key)
  end
  redis.call('HSET', P .. 'pay:' .. key, 'd', p.d, 'v', p.newv, 'cu', p.cu, 'cr', p.cr, 'hu', p.hu, 'hr', p.hr,
    'amt', p.amt, 'ret', p.ret, 'req', p.req, 'tran', p.tran, 'rrn', p.rrn, 'stan', p.stan, 'part', p.part,
    'mer', p.mer, 'ter', p.ter, 'st', p.st, 'out', p.out)
  if not old then redis.call('PERSIST', P .. 'tr:' .. key) end
end
for _, a in ipairs(advs) do
  local key, old = a.key, a.old
  local moved = not old or old.cu ~= a.cu
  if old then
    if moved then
      unindexAdvice(key, old)
    else
      for _, name in ipairs(AF) do
        if old[name] ~= a[name] and old[name] ~= '' then redis.call('ZREM', P .. AIX[name] .. old[name], key) end
      end
      if old.st == 'PENDING' then
        redis.call('ZREM', P .. 'due:' .. old.part, key)
        redis.call('ZREM', P .. 'due', key)
      end
      if QS[old.st] then redis.call('ZREM', qkey(old.st, old.part), key) end
    end
  end
  if moved then redis.call('ZADD', P .. 'ac', a.cu, key) end
  for _, name in ipairs(AF) do
    if (moved or old[name] ~= a[name]) and a[name] ~= '' then
      redis.call('ZADD', P .. AIX[name] .. a[name], a.cu, key)
    end
  end
  if a.lu ~= ZERO then redis.call('ZADD', P .. 'a:leased', a.cu, key) else redis.call('ZREM', P .. 'a:leased', key) end
  if a.st == 'PENDING' then
    redis.call('ZADD', P .. 'due:' .. a.part, a.nu, key)
    redis.call('ZADD', P .. 'due', a.nu, key)
  end
  if QS[a.st] then redis.call('ZADD', qkey(a.st, a.part), a.qu, key) end
  redis.call('HSET', P .. 'adv:' .. key, 'd', a.d, 'v', a.newv, 'id', a.id, 'pk', a.pk, 'part', a.part, 'st', a.st,
    'cu', a.cu, 'cr', a.cr, 'nu', a.nu, 'nr', a.nr, 'lo', a.lo, 'lu', a.lu, 'lr', a.lr, 'qu', a.qu, 'qr', a.qr, 'at', a.at)
end
if ctl then
  redis.call('HSET', P .. 'ctl:' .. ctl.part, 'd', ctl.d, 'v', ctl.newv)
  redis.call('ZADD', P .. 'ctls', 0, ctl.part)
end
-- A rail's record: its hash, its key in the kind's lexical set, its due
-- time, and its secondary keys (the old ones, kept in the hash as idx,
-- one per line, are taken out first).
for _, r in ipairs(recs) do
  local ns = r.owner .. '/' .. r.kind
  for old in string.gmatch(r.oldidx, '[^\n]+') do redis.call('ZREM', P .. 'ri:' .. ns .. ':' .. old, r.rkey) end
  for _, x in ipairs(r.idx) do redis.call('ZADD', P .. 'ri:' .. ns .. ':' .. x, 0, r.rkey) end
  redis.call('ZADD', P .. 'rk:' .. ns, 0, r.rkey)
  if r.due ~= '0' then redis.call('ZADD', P .. 'rd:' .. ns, r.due, r.rkey) else redis.call('ZREM', P .. 'rd:' .. ns, r.rkey) end
  redis.call('HSET', P .. 'rec:' .. r.key, 'd', r.d, 'v', r.newv, 'idx', table.concat(r.idx, '\n'))
end
local tkey = P .. 'tr:' .. tk
if nt > 0 then
  local batch = {}
  for j = 1, nt do
    batch[#batch + 1] = ARGV[i]; i = i + 1
    if #batch == 100 or j == nt then
      redis.call('RPUSH', tkey, unpack(batch))
      batch = {}
    end
  end
end

-- Lifetimes. A QR code in use by a stored payment lives as long as that
-- payment; otherwise until it expires, plus keep. A payment, its advices
-- and its trace have no TTL: the janitor deletes them together, with their
-- index entries, when their retention ends.
if q then
  local used = q.pk ~= '' and ((p and p.key == q.pk) or redis.call('EXISTS', P .. 'pay:' .. q.pk) == 1)
  if not used then
    qrExpire(q.tran, q.ret, q.req, q.exp, now(), keep)
  elseif redis.call('PTTL', P .. 'qr:' .. q.tran) ~= -1 then
    redis.call('PERSIST', P .. 'qr:' .. q.tran)
    redis.call('PERSIST', P .. 'qrreq:' .. q.ret .. '/' .. q.req)
    redis.call('PERSIST', P .. 'tr:qr/' .. q.tran)
  end
end
if nt > 0 then
  -- A trace lives as long as what it tells of: a QR code's as long as the
  -- code, a payment's as long as the payment; a trace of nothing stored
  -- (the payment is gone) for the retention.
  if string.sub(tk, 1, 3) == 'qr/' then
    local ttl = redis.call('PTTL', P .. 'qr:' .. string.sub(tk, 4))
    if ttl == -1 then
      redis.call('PERSIST', tkey)
    elseif ttl == -2 then
      redis.call('PEXPIRE', tkey, keep)
    else
      redis.call('PEXPIRE', tkey, ttl)
    end
  elseif p and p.key == tk then
    -- Written above, where a new payment's trace lost any TTL.
  elseif string.sub(tk, 1, 8) == 'partner/' then
    -- A partner's audit trail of operator actions (the engine's
    -- convention): small, and kept for ever.
    redis.call('PERSIST', tkey)
  elseif redis.call('EXISTS', P .. 'pay:' .. tk) == 1 then
    redis.call('PERSIST', tkey)
  else
    redis.call('PEXPIRE', tkey, retention)
  end
end
return {'ok'}
`

// claimSrc leases due advices. ARGV: prefix, partner ("" for any), owner,
// now (µs, ns), due-by (µs, ns: the later of Now and Claim.DueBy), lease
// end (µs, ns), max. It walks the partner's due queue (scored by NextAt)
// oldest first and leases each advice whose NextAt is not after due-by and
// that carries no live lease at now (exact times), and is the first of its
// payment, unless another advice of the payment holds a live lease. It
// returns {key, data, version, …} of the leased advices.
const claimSrc = "#!lua\n" + `
local P, partner, owner = ARGV[1], ARGV[2], ARGV[3]
local nowU, nowR = tonumber(ARGV[4]), tonumber(ARGV[5])
local dueU, dueR = tonumber(ARGV[6]), tonumber(ARGV[7])
local untilU, untilR = ARGV[8], ARGV[9]
local max = tonumber(ARGV[10])
local due = P .. 'due'
if partner ~= '' then due = P .. 'due:' .. partner end
-- after reports whether the time (u, r) is after (bu, br).
local function after(u, r, bu, br)
  u, r = tonumber(u), tonumber(r)
  return u > bu or (u == bu and r > br)
end
local leasedPay = {}
local function paymentLeased(pk)
  if leasedPay[pk] == nil then
    leasedPay[pk] = false
    for _, ak in ipairs(redis.call('ZRANGE', P .. 'a:pay:' .. pk, 0, -1)) do
      local l = redis.call('HMGET', P .. 'adv:' .. ak, 'lu', 'lr')
      if l[1] and after(l[1], l[2], nowU, nowR) then
        leasedPay[pk] = true
        break
      end
    end
  end
  return leasedPay[pk]
end
local out, seen, picked, offset = {}, {}, 0, 0
local chunk = math.max(64, 2 * max)
while picked < max do
  local c = redis.call('ZRANGEBYSCORE', due, '-inf', dueU, 'LIMIT', offset, chunk)
  for _, ak in ipairs(c) do
    local hk = P .. 'adv:' .. ak
    local f = redis.call('HMGET', hk, 'nu', 'nr', 'lu', 'lr', 'pk', 'v', 'cu')
    if f[1] and not after(f[1], f[2], dueU, dueR) and not after(f[3], f[4], nowU, nowR) and not seen[f[5]] then
      seen[f[5]] = true
      if not paymentLeased(f[5]) then
        local v = tonumber(f[6]) + 1
        redis.call('HSET', hk, 'v', v, 'lo', owner, 'lu', untilU, 'lr', untilR)
        redis.call('ZADD', P .. 'a:leased', f[7], ak)
        leasedPay[f[5]] = true
        out[#out + 1] = ak
        out[#out + 1] = redis.call('HGET', hk, 'd')
        out[#out + 1] = v
        picked = picked + 1
        if picked == max then break end
      end
    end
  end
  if #c < chunk then break end
  offset = offset + chunk
end
return out
`

// janitorSrc deletes up to a batch of payments whose retention ended, with
// their advices, traces and every index entry, and hands their QR codes to
// the TTL of unused codes. A payment with an advice still pending, held or
// dead is kept (an advice is never dropped unseen) and looked at again a
// day later. ARGV: prefix, retention ms, keep ms, batch. It returns
// {deleted, looked at}.
const janitorSrc = "#!lua\n" + prelude + `
local retention, keep, batch = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local postpone = math.min(retention, 86400000)
local now = clock()
local due = redis.call('ZRANGEBYSCORE', P .. 'gc', '-inf', now, 'LIMIT', 0, batch)
local deleted = 0
for _, key in ipairs(due) do
  local old = payFields(key)
  if not old then
    redis.call('ZREM', P .. 'gc', key)
  else
    local advs = redis.call('ZRANGE', P .. 'a:pay:' .. key, 0, -1)
    local fields, open = {}, false
    for j, ak in ipairs(advs) do
      fields[j] = advFields(ak)
      local st = fields[j] and fields[j].st
      if QS[st] then open = true end
    end
    if open then
      redis.call('ZADD', P .. 'gc', now + postpone, key)
    else
      for j, ak in ipairs(advs) do
        if fields[j] then
          unindexAdvice(ak, fields[j])
          redis.call('DEL', P .. 'adv:' .. ak)
        end
      end
      unindexPayment(key, old)
      redis.call('DEL', P .. 'pay:' .. key, P .. 'tr:' .. key, P .. 'a:pay:' .. key)
      if old.tran ~= '' then
        local qf = redis.call('HMGET', P .. 'qr:' .. old.tran, 'pk', 'ret', 'req', 'exp')
        if qf[1] == key then qrExpire(old.tran, qf[2], qf[3], qf[4], now, keep) end
      end
      deleted = deleted + 1
    end
  end
end
return {deleted, #due}
`

// walkSrc pages through one sorted-set index and returns the records that
// pass every filter, checked on the records' hash fields so that only
// matches travel. ARGV: prefix, record key prefix ('pay:' or 'adv:'),
// direction ('1' newest first), start score, stop score, how many members
// at the start score were already seen, limit, budget (members to look at
// in this call), the candidate indexes (count, keys: the one with the fewest
// members in the score range drives), the fields to return (count, names;
// the first is 'd'), and the filters (count, then each as
// 'eq'|'ne', field, value; 'rng', field, lo, hi; 'tge'|'tlt', µs field,
// ns field, µs, ns; 'kb', µs field, µs, member: only members whose µs is
// below, or equal with the member before the given one in byte order —
// the order of equal scores in a sorted set, so a page continues exactly
// where the last ended). It returns {driver, cursor score, cursor skip, done,
// fields of each match…}; the next call passes the driver alone and starts
// at the cursor. The budget keeps every call short, so a search through a
// large index never blocks the server for long.
const walkSrc = "#!lua flags=no-writes\n" + `
local P, rec, rev = ARGV[1], ARGV[2], ARGV[3] == '1'
local cur, stop, skip = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local limit, budget = tonumber(ARGV[7]), tonumber(ARGV[8])
local i = 9
local function count()
  local n = tonumber(ARGV[i]); i = i + 1
  return n
end
local cands, fetch, filters = {}, {}, {}
for j = 1, count() do cands[j] = ARGV[i]; i = i + 1 end
for j = 1, count() do fetch[j] = ARGV[i]; i = i + 1 end
for j = 1, count() do
  local f = {kind = ARGV[i], a = ARGV[i + 1]}
  if f.kind == 'eq' or f.kind == 'ne' then
    f.v = ARGV[i + 2]; i = i + 3
  elseif f.kind == 'kb' then
    f.u, f.k = tonumber(ARGV[i + 2]), ARGV[i + 3]; i = i + 4
  elseif f.kind == 'rng' then
    f.lo, f.hi = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]); i = i + 4
  else
    f.b, f.u, f.r = ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]); i = i + 5
  end
  filters[j] = f
end
local names, pos = {}, {}
local function need(n)
  if n and not pos[n] then
    names[#names + 1] = n
    pos[n] = #names
  end
end
for _, f in ipairs(filters) do need(f.a); need(f.b) end
-- bytesBefore compares by bytes, as sorted sets order equal scores: Lua's
-- own < on strings follows the server's locale.
local function bytesBefore(a, b)
  for j = 1, math.min(#a, #b) do
    local x, y = string.byte(a, j), string.byte(b, j)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function match(vals, member)
  for _, f in ipairs(filters) do
    local x = vals[pos[f.a]]
    if not x then return false end
    if f.kind == 'kb' then
      local u = tonumber(x)
      if u > f.u or (u == f.u and not bytesBefore(member, f.k)) then return false end
    elseif f.kind == 'eq' then
      if x ~= f.v then return false end
    elseif f.kind == 'ne' then
      if x == f.v then return false end
    elseif f.kind == 'rng' then
      local n = tonumber(x)
      if not n or n < f.lo or n > f.hi then return false end
    else
      local u, r = tonumber(x), tonumber(vals[pos[f.b]])
      local before = u < f.u or (u == f.u and r < f.r)
      if (f.kind == 'tge') == before then return false end
    end
  end
  return true
end

local driver = cands[1]
if #cands > 1 then
  local lo, hi = cur, stop
  if rev then lo, hi = stop, cur end
  local best
  for _, c in ipairs(cands) do
    local n = redis.call('ZCOUNT', c, lo, hi)
    if not best or n < best then best, driver = n, c end
  end
end
local out = {driver, 0, 0, 0}
local found, looked, done = 0, 0, false
while found < limit and looked < budget and not done do
  local n = math.min(256, budget - looked)
  local items
  if rev then
    items = redis.call('ZREVRANGEBYSCORE', driver, cur, stop, 'WITHSCORES', 'LIMIT', skip, n)
  else
    items = redis.call('ZRANGEBYSCORE', driver, cur, stop, 'WITHSCORES', 'LIMIT', skip, n)
  end
  local got = #items / 2
  for j = 1, #items, 2 do
    local member, score = items[j], tonumber(items[j + 1])
    if score == cur then skip = skip + 1 else cur, skip = score, 1 end
    looked = looked + 1
    local hk = P .. rec .. member
    if #names == 0 or match(redis.call('HMGET', hk, unpack(names)), member) then
      local vals = redis.call('HMGET', hk, unpack(fetch))
      if vals[1] then
        for k = 1, #fetch do out[#out + 1] = vals[k] end
        found = found + 1
        if found == limit then break end
      end
    end
  end
  if found < limit and got < n then done = true end
end
out[2], out[3], out[4] = cur, skip, done and 1 or 0
return out
`

// lookupSrc finds the payments an identifier names: a payment key, a
// payment request id of any retailer, a tranId, an rrn, or an advice id of
// any sender (through the advice's payment). ARGV: prefix, id, the most to
// take from each index. It returns {data, version, …}.
const lookupSrc = "#!lua flags=no-writes\n" + `
local P, id, lim = ARGV[1], ARGV[2], tonumber(ARGV[3])
local keys, seen = {}, {}
local function add(k)
  if not seen[k] then
    seen[k] = true
    keys[#keys + 1] = k
  end
end
if redis.call('EXISTS', P .. 'pay:' .. id) == 1 then add(id) end
for _, ix in ipairs({'p:req:', 'p:tran:', 'p:rrn:'}) do
  for _, k in ipairs(redis.call('ZREVRANGE', P .. ix .. id, 0, lim - 1)) do add(k) end
end
for _, ak in ipairs(redis.call('ZREVRANGE', P .. 'a:id:' .. id, 0, lim - 1)) do
  local pk = redis.call('HGET', P .. 'adv:' .. ak, 'pk')
  if pk then add(pk) end
end
local out = {}
for _, k in ipairs(keys) do
  local f = redis.call('HMGET', P .. 'pay:' .. k, 'd', 'v')
  if f[1] then
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
  end
end
return out
`

// statsSrc reads one partner's queue statistics. ARGV: prefix, partner,
// sample. It returns {pending, held, dead, operator, oldest QueuedAt µs or ”,
// earliest NextAt µs or ”, then the QueuedAt µs and attempts of up to
// sample pending advices queued longest}. Every step is a count or a range of the queue's
// own sorted sets, so its cost is bounded by the sample.
const statsSrc = "#!lua flags=no-writes\n" + `
local P, part, sample = ARGV[1], ARGV[2], tonumber(ARGV[3])
local function q(st) return P .. 'q:' .. st .. ':' .. part end
local out = {redis.call('ZCARD', q('PENDING')), redis.call('ZCARD', q('HELD')), redis.call('ZCARD', q('DEAD')), redis.call('ZCARD', q('OPERATOR')), '', ''}
local oldest = redis.call('ZRANGE', q('PENDING'), 0, 0, 'WITHSCORES')
if oldest[2] then out[5] = oldest[2] end
local next = redis.call('ZRANGE', P .. 'due:' .. part, 0, 0, 'WITHSCORES')
if next[2] then out[6] = next[2] end
local pend = redis.call('ZRANGE', q('PENDING'), 0, sample - 1, 'WITHSCORES')
for j = 1, #pend, 2 do
  out[#out + 1] = pend[j + 1]
  out[#out + 1] = redis.call('HGET', P .. 'adv:' .. pend[j], 'at') or '0'
end
return out
`

// controlsSrc returns every partner control: {data, version, …} by
// partner id.
const controlsSrc = "#!lua flags=no-writes\n" + `
local P = ARGV[1]
local out = {}
for _, part in ipairs(redis.call('ZRANGE', P .. 'ctls', 0, -1)) do
  local f = redis.call('HMGET', P .. 'ctl:' .. part, 'd', 'v')
  if f[1] then
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
  end
end
return out
`

// recordsSrc lists rails' records. ARGV: prefix, owner/kind, mode ('key',
// 'index' or 'due'), index, lower bound, upper bound, 'desc' or ”, limit.
// Bounds are ZRANGE BYLEX bounds ('-', '+', '(key') for key and index
// listings and scores for due. It returns {data, version, …}.
const recordsSrc = "#!lua flags=no-writes\n" + `
local P, ns, mode, idx, lo, hi, desc, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local keys
if mode == 'due' then
  keys = redis.call('ZRANGE', P .. 'rd:' .. ns, lo, hi, 'BYSCORE', 'LIMIT', 0, n)
else
  local set = P .. 'rk:' .. ns
  if mode == 'index' then set = P .. 'ri:' .. ns .. ':' .. idx end
  if desc == 'desc' then
    keys = redis.call('ZRANGE', set, hi, lo, 'BYLEX', 'REV', 'LIMIT', 0, n)
  else
    keys = redis.call('ZRANGE', set, lo, hi, 'BYLEX', 'LIMIT', 0, n)
  end
end
local out = {}
for _, k in ipairs(keys) do
  local f = redis.call('HMGET', P .. 'rec:' .. ns .. '/' .. k, 'd', 'v')
  if f[1] then
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
  end
end
return out
`

// Scripts are sent by SHA (EVALSHA) and loaded again when the server does
// not know them (NOSCRIPT: a restart or a failover empties the cache).
var (
	commitScript   = redis.NewScript(commitSrc)
	claimScript    = redis.NewScript(claimSrc)
	janitorScript  = redis.NewScript(janitorSrc)
	walkScript     = redis.NewScript(walkSrc)
	lookupScript   = redis.NewScript(lookupSrc)
	statsScript    = redis.NewScript(statsSrc)
	controlsScript = redis.NewScript(controlsSrc)
	recordsScript  = redis.NewScript(recordsSrc)
)
