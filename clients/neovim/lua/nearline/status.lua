--- The `nearline/status` notification and the statusline component.

local M = {}

---@class nearline.Status
---@field state 'loading'|'ready'|'error'
---@field tier string?       'local'
---@field model string?
---@field source string?     'model', 'cache', 'typing-through', ...
---@field engine string?     'local' or 'remote' (the team's completion server)
---@field latency_ms number? of the last answer
---@field spend_today_usd number?
---@field message string?

--- The last status of each client, by client id.
---@type table<integer, nearline.Status>
M.by_client = {}

--- false after :NearlineToggle turned autocomplete off.
M.enabled = true

--- Handler of `nearline/status` (server → client notification).
function M.handler(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  local old = M.by_client[ctx.client_id] or {}
  local new = vim.deepcopy(params)
  -- A state change (e.g. "model loaded") carries no latency: keep the last answer's.
  if new.latency_ms == nil or new.latency_ms == vim.NIL then
    new.latency_ms = new.state == 'ready' and old.latency_ms or nil
    new.source = new.state == 'ready' and old.source or nil
  end
  M.by_client[ctx.client_id] = new
  vim.api.nvim_exec_autocmds('User', { pattern = 'NearlineStatus', data = new, modeline = false })
  vim.cmd('redrawstatus!')
end

--- Forget a client's status when it stops.
function M.forget(client_id)
  M.by_client[client_id] = nil
end

---@param bufnr integer?
---@return nearline.Status?
function M.current(bufnr)
  local clients = vim.lsp.get_clients({ name = 'nearline', bufnr = bufnr or 0 })
  if #clients == 0 then
    clients = vim.lsp.get_clients({ name = 'nearline' })
  end
  for _, client in ipairs(clients) do
    local status = M.by_client[client.id]
    if status then
      return status
    end
  end
  if #clients > 0 then
    return { state = 'loading' }
  end
end

local function number(value)
  return type(value) == 'number' and value or nil
end

--- "nearline: local 42ms $0.00" ("remote" when the team's completion server answered), "nearline: loading…", "nearline: error", "nearline: off",
--- or "" when no nearline client runs.
---@return string
function M.statusline()
  local status = M.current()
  if not status then
    return ''
  end
  if status.state == 'error' then
    return 'nearline: error'
  end
  if not M.enabled then
    return 'nearline: off'
  end
  if status.state ~= 'ready' then
    return 'nearline: loading…'
  end
  local where = type(status.tier) == 'string' and status.tier or 'local'
  if status.engine == 'remote' then
    where = 'remote'
  end
  local parts = { 'nearline:', where }
  local latency = number(status.latency_ms)
  if latency then
    table.insert(parts, ('%dms'):format(math.floor(latency + 0.5)))
  end
  table.insert(parts, ('$%.2f'):format(number(status.spend_today_usd) or 0))
  return table.concat(parts, ' ')
end

return M
