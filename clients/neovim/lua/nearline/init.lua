--- nearline for Neovim: local AI autocomplete as ghost text from `nearline serve`.
---
--- require('nearline').setup({
---   cmd = { 'nearline', 'serve' },
---   init_options = { completion = { time_budget_ms = 50 } },
--- })

local config = require('nearline.config')

local M = {}

--- Start nearline for the configured filetypes, turn on ghost text, map the accept key, tell
--- the server where the cursor rests, and define the :Nearline* commands. Returns false (and
--- says why) on Neovim older than 0.11.
---@param opts nearline.Options?
---@return boolean
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('nearline: needs Neovim 0.11 or newer (vim.lsp.config)', vim.log.levels.ERROR)
    return false
  end
  local options = config.resolve(opts)
  config.options = options

  local augroup = vim.api.nvim_create_augroup('nearline', { clear = true })
  vim.lsp.config(config.name, config.lsp_config(options))
  vim.lsp.enable(config.name)

  local inline = require('nearline.inline')
  local commands = require('nearline.commands')
  local status = require('nearline.status')
  local rest = require('nearline.rest')
  inline.setup(augroup)
  if options.keymap_accept then
    inline.map_accept(options.keymap_accept)
  end
  commands.setup()
  if options.warm_at_cursor then
    rest.setup(augroup) -- nearline/cursorRest
  else
    rest.stop()
  end

  vim.api.nvim_create_autocmd('LspAttach', {
    group = augroup,
    callback = function(args)
      local client = config.client_of(args)
      if client and not status.enabled then
        commands.apply_enabled(client) -- toggled off before this client started
      end
    end,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = augroup,
    callback = function(args)
      local client = config.client_of(args)
      if client and vim.tbl_count(client.attached_buffers) <= 1 then -- its last buffer
        status.forget(client.id)
        require('nearline.rest').forget(client.id)
      end
    end,
  })
  return true
end

--- For the statusline: "nearline: local 42ms $0.00", "nearline: loading…", "nearline: error",
--- "nearline: off", or "" when nearline is not running.
---@return string
function M.statusline()
  return require('nearline.status').statusline()
end

--- Accept the ghost text; false when there is none (for your own mappings).
---@return boolean
function M.accept()
  return require('nearline.inline').accept()
end

--- Turn autocomplete on or off (flip it when `enable` is nil). Returns the new state.
---@param enable boolean?
---@return boolean
function M.toggle(enable)
  return require('nearline.commands').toggle(enable)
end

--- Whether autocomplete is on.
---@return boolean
function M.is_enabled()
  return require('nearline.status').enabled
end

return M
