--- `nearline/cursorRest` (client → server): where the cursor rests, so the server can evaluate
--- the prompt there before the person types. Sent when the cursor has not moved for 200 ms in a
--- buffer the nearline client is attached to (moves from typing count too), and when such a
--- buffer becomes the current one (or the client attaches to it). The same place is not sent
--- twice in a row. Off with setup({ warm_at_cursor = false }).

local config = require('nearline.config')

local M = {}

M.METHOD = 'nearline/cursorRest'
M.DELAY_MS = 200

---@type uv.uv_timer_t?
local timer

--- The last place sent to each client ("uri line character"), by client id.
---@type table<integer, string>
local last_sent = {}

--- Send the current window's cursor position to each nearline client attached to its buffer
--- (in the client's position encoding), unless that client got this place last time.
function M.send_now()
  if not require('nearline.status').enabled then
    return -- autocomplete is off: nothing to warm
  end
  local win = vim.api.nvim_get_current_win()
  local bufnr = vim.api.nvim_win_get_buf(win)
  for _, client in ipairs(vim.lsp.get_clients({ name = config.name, bufnr = bufnr })) do
    if client.initialized and not client:is_stopped() then
      local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
      local key = ('%s %d %d'):format(params.textDocument.uri, params.position.line, params.position.character)
      if last_sent[client.id] ~= key and client:notify(M.METHOD, params) then
        last_sent[client.id] = key
      end
    end
  end
end

--- Whether a nearline client is attached to `bufnr`.
---@param bufnr integer
---@return boolean
local function attached(bufnr)
  return #vim.lsp.get_clients({ name = config.name, bufnr = bufnr }) > 0
end

--- (Re)start the 200 ms timer: only the newest place is sent, once the cursor stays there.
function M.schedule()
  if timer then
    timer:stop()
  end
  if not attached(vim.api.nvim_get_current_buf()) then
    return
  end
  timer = timer or assert(vim.uv.new_timer())
  timer:start(M.DELAY_MS, 0, vim.schedule_wrap(M.send_now))
end

--- Forget what a client was sent (it left its last buffer).
---@param client_id integer
function M.forget(client_id)
  last_sent[client_id] = nil
end

--- Stop the timer and send nothing more (setup() again with warm_at_cursor = false).
function M.stop()
  if timer then
    timer:stop()
    if not timer:is_closing() then
      timer:close()
    end
    timer = nil
  end
end

--- The autocmds, in nearline's augroup: cursor moves (normal and insert mode), entering a
--- buffer, and the client attaching to the current buffer.
---@param augroup integer
function M.setup(augroup)
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI', 'BufEnter' }, {
    group = augroup,
    callback = function()
      M.schedule()
    end,
  })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = augroup,
    callback = function(args)
      if config.client_of(args) and args.buf == vim.api.nvim_get_current_buf() then
        M.schedule()
      end
    end,
  })
  vim.api.nvim_create_autocmd('VimLeavePre', {
    group = augroup,
    callback = function()
      M.stop()
    end,
  })
end

return M
