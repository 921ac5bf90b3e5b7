--- :checkhealth nearline

local M = {}

local health = vim.health
local VERSION_TIMEOUT_MS = 20000

--- The command line for `nearline --version` made from the server command
--- ({'nearline', 'serve'} -> {'nearline', '--version'}; {python, '-m', 'nearline', 'serve'} too).
---@param cmd string[]
---@return string[]
function M.version_cmd(cmd)
  local out = {}
  for _, arg in ipairs(cmd) do
    if arg == 'serve' then
      break
    end
    table.insert(out, arg)
  end
  table.insert(out, '--version')
  return out
end

local function check_neovim()
  health.start('Neovim')
  local version = tostring(vim.version())
  if vim.fn.has('nvim-0.11') == 0 then
    health.error(('Neovim %s: nearline needs 0.11 or newer (vim.lsp.config)'):format(version))
    return
  end
  health.ok(('Neovim %s'):format(version))
  if require('nearline.inline').supported() then
    local enabled = vim.lsp.inline_completion.is_enabled()
    local state = enabled and 'enabled' or 'not enabled globally'
    health.ok(('inline completion (ghost text): supported, %s'):format(state))
  else
    health.warn('no vim.lsp.inline_completion (Neovim < 0.12): suggestions come as completion items', {
      'Trigger them with <C-x><C-o>, or upgrade to Neovim 0.12 for ghost text',
    })
  end
end

local function check_executable()
  health.start('nearline executable')
  local cfg = vim.lsp.config['nearline']
  if not cfg then
    health.warn('no vim.lsp.config("nearline"): call require("nearline").setup()')
    return
  end
  local cmd = cfg.cmd
  if cmd == nil then
    health.error('no cmd for the "nearline" LSP config', {
      'call require("nearline").setup(),',
      'or vim.lsp.config("nearline", { cmd = { "nearline", "serve" }, ... })',
    })
    return
  elseif type(cmd) == 'function' then
    health.info('cmd is a function (e.g. vim.lsp.rpc.connect): not checked')
    return
  end
  if type(cmd) ~= 'table' or type(cmd[1]) ~= 'string' then
    health.error('cmd must be a list like { "nearline", "serve" }, got ' .. vim.inspect(cmd))
    return
  end
  health.info('cmd: ' .. table.concat(cmd, ' '))
  if vim.fn.executable(cmd[1]) == 0 then
    health.error(('%s: not found or not executable'):format(cmd[1]), {
      'pip install nearline (or scripts/try.sh), then put its bin folder on $PATH',
      'or give the full path: setup({ cmd = { "/path/to/.venv/bin/nearline", "serve" } })',
    })
    return
  end
  health.ok(('found %s'):format(vim.fn.exepath(cmd[1])))
  local version_cmd = M.version_cmd(cmd)
  local ok, result = pcall(function()
    return vim.system(version_cmd, { text = true }):wait(VERSION_TIMEOUT_MS)
  end)
  if not ok then
    health.error(('%s: %s'):format(table.concat(version_cmd, ' '), result))
  elseif result.code ~= 0 then
    local line = table.concat(version_cmd, ' ')
    health.error(('%s exited with %d: %s'):format(line, result.code, vim.trim(result.stderr or '')))
  else
    health.ok(vim.trim((result.stdout or '') .. (result.stderr or '')))
  end
end

local function check_clients()
  health.start('nearline language server')
  local clients = vim.lsp.get_clients({ name = 'nearline' })
  if #clients == 0 then
    local filetypes = vim.tbl_get(vim.lsp.config['nearline'] or {}, 'filetypes') or {}
    local advice = { 'if it does not start, see :LspLog and :checkhealth vim.lsp' }
    if vim.lsp.is_enabled and not vim.lsp.is_enabled('nearline') then
      advice = { 'vim.lsp.enable("nearline") was not called: call require("nearline").setup()' }
    elseif #filetypes > 0 then
      table.insert(advice, 1, 'it starts when you open a file of type: ' .. table.concat(filetypes, ', '))
    end
    health.warn('not running', advice)
    return
  end
  local status = require('nearline.status')
  for _, client in ipairs(clients) do
    local info = client.server_info or {}
    local buffers = {}
    for bufnr in pairs(client.attached_buffers) do
      table.insert(buffers, vim.fn.fnamemodify(vim.api.nvim_buf_get_name(bufnr), ':~:.'))
    end
    health.ok(('client %d: %s %s, root %s, attached to %s'):format(
      client.id,
      info.name or 'nearline',
      info.version or '',
      client.root_dir or '(single file)',
      #buffers > 0 and table.concat(buffers, ', ') or 'no buffer'
    ))
    local st = status.by_client[client.id]
    if st and st.state == 'error' then
      health.error(('model: %s'):format(st.message or 'error'), { 'run `nearline doctor`' })
    elseif st then
      health.ok(('model: %s (%s)'):format(st.model or '?', st.state))
    end
    if client.server_capabilities.inlineCompletionProvider == nil then
      health.warn('the server does not advertise inline completion')
    end
  end
  health.info('autocomplete: ' .. (status.enabled and 'on' or 'off (:NearlineToggle)'))
  health.info('statusline: ' .. status.statusline())
end

function M.check()
  check_neovim()
  check_executable()
  check_clients()
end

return M
