--- Ghost text: inline completion on Neovim 0.12+, the accept key, `nearline/completionReady`;
--- on 0.11 (no vim.lsp.inline_completion) the suggestion comes as a completion item instead.

local M = {}

local InlineCompletionTriggerKind = { Invoked = 1, Automatic = 2 }

---@return boolean
function M.supported()
  local inline = vim.lsp.inline_completion
  return type(inline) == 'table' and type(inline.enable) == 'function'
end

--- Accept the ghost text shown in the current buffer. Returns false when there is none.
---@return boolean
function M.accept()
  return M.supported() and vim.lsp.inline_completion.get() or false
end

--- Turn ghost text on or off for one client (0.12), or its completion items (0.11).
---@param client vim.lsp.Client
---@param enable boolean
function M.enable_client(client, enable)
  if M.supported() then
    vim.lsp.inline_completion.enable(enable, { client_id = client.id })
  elseif vim.lsp.completion and vim.lsp.completion.enable then
    for bufnr in pairs(client.attached_buffers) do
      vim.lsp.completion.enable(enable, client.id, bufnr, { autotrigger = false })
    end
  end
end

--- The inline completion state of a buffer: Neovim keeps it in a private table
--- (vim.lsp._capability); nil when that is not there (another Neovim version).
---@param bufnr integer
local function completor(bufnr)
  local capability = vim.tbl_get(vim.lsp, '_capability', 'all', 'inline_completion')
  local active = capability and capability.active and capability.active[bufnr]
  if active and type(active.handler) == 'function' and type(active.client_state) == 'table' then
    return active
  end
end

--- Ask the server for the ghost text at the cursor again, now, and show what it answers.
---@param client vim.lsp.Client
---@param bufnr integer
function M.request_again(client, bufnr)
  local state = completor(bufnr)
  if not state then
    -- Another Neovim version: its inline completion asks again (debounced) on CursorMovedI.
    pcall(vim.api.nvim_exec_autocmds, 'CursorMovedI', {
      group = ('nvim.lsp.inline_completion:%d'):format(bufnr),
      modeline = false,
    })
    return
  end
  if not state.client_state[client.id] then
    return -- inline completion is off for this client
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  ---@diagnostic disable-next-line: inject-field
  params.context = { triggerKind = InlineCompletionTriggerKind.Automatic }
  client:request('textDocument/inlineCompletion', params, function(err, result, ctx)
    -- Only if the person is still there and the buffer's inline completion still on.
    local still_there = M.cursor_at(bufnr, client, params.position)
    if still_there and completor(bufnr) == state and state.client_state[client.id] then
      state:handler(err, result, ctx)
    end
  end, bufnr)
end

--- Whether the current window shows `bufnr` in insert mode with the cursor at `position`.
---@param bufnr integer
---@param client vim.lsp.Client
---@param position lsp.Position
---@return boolean
function M.cursor_at(bufnr, client, position)
  if vim.api.nvim_get_current_buf() ~= bufnr or not vim.api.nvim_get_mode().mode:match('^i') then
    return false
  end
  local here = vim.lsp.util.make_position_params(0, client.offset_encoding).position
  return here.line == position.line and here.character == position.character
end

--- Handler of `nearline/completionReady` {textDocument: {uri}, position}: a suggestion cut by
--- the server's time budget is now whole; asking again at the same place gets it from its cache.
function M.on_completion_ready(_, params, ctx)
  if not M.supported() or type(params) ~= 'table' or not params.textDocument or not params.position then
    return
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local bufnr = vim.api.nvim_get_current_buf()
  if not client or vim.uri_from_bufnr(bufnr) ~= params.textDocument.uri then
    return
  end
  if not require('nearline.status').enabled or not M.cursor_at(bufnr, client, params.position) then
    return
  end
  M.ready_requests = (M.ready_requests or 0) + 1
  M.request_again(client, bufnr)
end

--- What an insert-mode mapping of `key` made before ours does, as keys for an expr mapping
--- (Neovim 0.12's default <Tab> jumps in a snippet, else inserts a tab).
---@param key string
---@return fun(): string
local function previous(key)
  local old = vim.fn.maparg(key, 'i', false, true)
  if type(old) ~= 'table' or vim.tbl_isempty(old) or old.desc == 'nearline: accept the ghost text' then
    return function()
      return key
    end
  end
  return function()
    if old.callback then
      local keys = old.callback()
      return old.expr == 1 and type(keys) == 'string' and keys or ''
    end
    if old.expr == 1 then
      return vim.api.nvim_eval(old.rhs)
    end
    return old.rhs
  end
end

--- Map the accept key in insert mode: accept the ghost text if there is one, else the key
--- does what it did before.
---@param key string
function M.map_accept(key)
  if not M.supported() then
    return -- 0.11: the suggestion is a completion item; accept it with <C-y>.
  end
  local fallback = previous(key)
  vim.keymap.set('i', key, function()
    if not vim.lsp.inline_completion.get() then
      return fallback()
    end
    return ''
  end, { expr = true, desc = 'nearline: accept the ghost text' })
end

--- Turn inline completion on (all buffers) or, on 0.11, completion items for nearline's buffers.
---@param augroup integer
function M.setup(augroup)
  if M.supported() then
    vim.lsp.inline_completion.enable(true)
    return
  end
  vim.api.nvim_create_autocmd('LspAttach', {
    group = augroup,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == 'nearline' and vim.lsp.completion and vim.lsp.completion.enable then
        local enabled = require('nearline.status').enabled
        vim.lsp.completion.enable(enabled, client.id, args.buf, { autotrigger = false })
      end
    end,
  })
end

return M
