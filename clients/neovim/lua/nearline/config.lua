--- Options of require('nearline').setup() and the vim.lsp.config() table they make.

local M = {}

--- The name of the LSP config, of the client and of the augroup.
M.name = 'nearline'

---@class nearline.Options
---@field cmd string[]|fun(...): vim.lsp.rpc.PublicClient  how to start `nearline serve`
---@field filetypes string[]
---@field root_markers string[]
---@field init_options table?   the server's settings (initializationOptions),
---                              e.g. { completion = { time_budget_ms = 50 } }
---@field keymap_accept string|false  insert-mode key that accepts the ghost text (false: no mapping)
---@field warm_at_cursor boolean  tell the server where the cursor rests (`nearline/cursorRest`)
M.defaults = {
  cmd = { 'nearline', 'serve' },
  filetypes = { 'python', 'lua', 'javascript', 'typescript', 'go', 'rust', 'c', 'cpp', 'sh' },
  root_markers = { '.nearline.toml', '.git' },
  init_options = nil,
  keymap_accept = '<Tab>',
  warm_at_cursor = true,
}

--- The options in use (set by setup()).
---@type nearline.Options
M.options = vim.deepcopy(M.defaults)

---@param opts table?
---@return nearline.Options
function M.resolve(opts)
  vim.validate('opts', opts, 'table', true)
  opts = opts or {}
  for key in pairs(opts) do
    if M.defaults[key] == nil and key ~= 'init_options' then
      local known = 'cmd, filetypes, root_markers, init_options, keymap_accept, warm_at_cursor'
      error(('nearline: unknown option %q (known: %s)'):format(key, known), 0)
    end
  end
  -- Lists replace the defaults instead of being merged index by index.
  local resolved = vim.deepcopy(M.defaults)
  for key, value in pairs(opts) do
    resolved[key] = vim.deepcopy(value)
  end
  vim.validate('cmd', resolved.cmd, { 'table', 'function' })
  vim.validate('filetypes', resolved.filetypes, 'table')
  vim.validate('root_markers', resolved.root_markers, 'table')
  vim.validate('init_options', resolved.init_options, 'table', true)
  vim.validate('keymap_accept', resolved.keymap_accept, { 'string', 'boolean' })
  vim.validate('warm_at_cursor', resolved.warm_at_cursor, 'boolean')
  if resolved.keymap_accept == true then
    resolved.keymap_accept = M.defaults.keymap_accept
  end
  return resolved
end

--- Handlers for nearline's own notifications (see the README's "Protocol extensions").
function M.handlers()
  return {
    ['nearline/status'] = function(...)
      return require('nearline.status').handler(...)
    end,
    ['nearline/completionReady'] = function(...)
      return require('nearline.inline').on_completion_ready(...)
    end,
  }
end

--- The table for vim.lsp.config('nearline', ...).
---@param opts nearline.Options
---@return vim.lsp.Config
function M.lsp_config(opts)
  return {
    cmd = opts.cmd,
    filetypes = opts.filetypes,
    root_markers = opts.root_markers,
    init_options = opts.init_options,
    handlers = M.handlers(),
  }
end

--- The nearline client an LspAttach or LspDetach event is about, or nil.
---@param args vim.api.keyset.create_autocmd.callback_args
---@return vim.lsp.Client?
function M.client_of(args)
  local client = vim.lsp.get_client_by_id(args.data.client_id)
  if client and client.name == M.name then
    return client
  end
end

--- The server settings a client was started with, without the optional `nearline` wrapper.
---@param client vim.lsp.Client
---@return table
function M.server_settings(client)
  local init = client.config and client.config.init_options or {}
  if type(init) ~= 'table' then
    return {}
  end
  if type(init.nearline) == 'table' then
    return init.nearline
  end
  return init
end

return M
