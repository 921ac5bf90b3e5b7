--- :NearlineRefactor, :NearlineExplain, :NearlineUsage, :NearlineToggle.

local config = require('nearline.config')
local status = require('nearline.status')

local M = {}

local ERROR, INFO = vim.log.levels.ERROR, vim.log.levels.INFO

---@param bufnr integer
---@return vim.lsp.Client?
local function client_for(bufnr)
  local client = vim.lsp.get_clients({ name = config.name, bufnr = bufnr })[1]
  if not client then
    vim.notify('nearline: not attached to this buffer (see :checkhealth nearline)', ERROR)
  end
  return client
end

--- Show text in a scratch buffer named `nearline://<title>` in a split (reused if open).
---@param title string
---@param lines string[]
---@param filetype string?
---@return integer bufnr
function M.show(title, lines, filetype)
  local name = 'nearline://' .. title
  local bufnr = vim.fn.bufnr(name)
  if bufnr == -1 or not vim.api.nvim_buf_is_valid(bufnr) then
    bufnr = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(bufnr, name)
    vim.bo[bufnr].bufhidden = 'wipe'
  end
  vim.bo[bufnr].modifiable = true
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.bo[bufnr].modifiable = false
  vim.bo[bufnr].filetype = filetype or 'markdown'
  local win = vim.fn.bufwinid(bufnr)
  if win == -1 then
    vim.cmd('botright split')
    vim.api.nvim_win_set_buf(0, bufnr)
    vim.api.nvim_win_set_height(0, math.min(math.max(#lines + 1, 5), 20))
  else
    vim.api.nvim_set_current_win(win)
  end
  return bufnr
end

local function scalar(value)
  if value == vim.NIL then
    return 'null'
  elseif type(value) == 'table' then
    return vim.inspect(value, { newline = ' ', indent = '' })
  end
  return tostring(value)
end

--- A server answer as readable lines: text as is, tables as "key: value".
---@param value any
---@return string[]
function M.lines_of(value)
  if type(value) == 'string' then
    return vim.split(value, '\n', { plain = true })
  end
  if type(value) ~= 'table' then
    return { scalar(value) }
  end
  for _, key in ipairs({ 'markdown', 'text', 'explanation', 'message' }) do
    if type(value[key]) == 'string' then
      return vim.split(value[key], '\n', { plain = true })
    end
  end
  if vim.islist(value) then
    return vim.tbl_map(scalar, value)
  end
  local keys = vim.tbl_keys(value)
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  local lines = {}
  for _, key in ipairs(keys) do
    local item = value[key]
    if vim.islist(item) and type(item[1]) == 'table' then
      table.insert(lines, ('%s:'):format(key))
      for _, entry in ipairs(item) do
        local fields = {}
        local names = vim.tbl_keys(entry)
        table.sort(names)
        for _, name in ipairs(names) do
          table.insert(fields, ('%s=%s'):format(name, scalar(entry[name])))
        end
        table.insert(lines, '  - ' .. table.concat(fields, ' '))
      end
    else
      table.insert(lines, ('%s: %s'):format(key, scalar(item)))
    end
  end
  return lines
end

--- The LSP range of a command's line range; the exact columns of a charwise visual selection.
---@param opts vim.api.keyset.create_user_command.command_args
---@param bufnr integer
---@param client vim.lsp.Client
---@return lsp.Range
function M.range_of(opts, bufnr, client)
  local line1, line2 = opts.line1, opts.line2
  if opts.range == 2 and vim.fn.visualmode() == 'v' then
    local first = vim.api.nvim_buf_get_mark(bufnr, '<')
    local last = vim.api.nvim_buf_get_mark(bufnr, '>')
    if first[1] == line1 and last[1] == line2 then
      return vim.lsp.util.make_given_range_params(first, last, bufnr, client.offset_encoding).range
    end
  end
  local text = vim.api.nvim_buf_get_lines(bufnr, line2 - 1, line2, false)[1] or ''
  return {
    start = { line = line1 - 1, character = 0 },
    ['end'] = { line = line2 - 1, character = vim.str_utfindex(text, client.offset_encoding) },
  }
end

--- Run a nearline command on the server; show its answer, apply an edit, or notify its error.
---@param client vim.lsp.Client
---@param bufnr integer
---@param command string
---@param arguments any[]?
---@param title string
function M.execute(client, bufnr, command, arguments, title)
  local params = { command = command, arguments = arguments }
  client:request('workspace/executeCommand', params, function(err, result)
    if err then
      vim.notify(('nearline: %s failed: %s'):format(command, err.message or vim.inspect(err)), ERROR)
      return
    end
    if result == nil or result == vim.NIL then
      return
    end
    if type(result) == 'table' then
      local edit = result.edit or ((result.changes or result.documentChanges) and result)
      if edit then
        vim.lsp.util.apply_workspace_edit(edit, client.offset_encoding)
        return
      end
      -- nearline's answer {ok, message | files | text, shown_as}: a failure, an edit already
      -- applied (workspace/applyEdit) or a long answer already opened (window/showDocument)
      -- was shown by the server itself; a text answer goes to a scratch window.
      if result.ok ~= nil then
        local shown = result.shown_as ~= nil and result.shown_as ~= 'message'
        if result.ok == false or type(result.text) ~= 'string' or shown then
          return
        end
      end
    end
    M.show(title, M.lines_of(result))
  end, bufnr)
end

--- :NearlineRefactor / :NearlineExplain: `{uri, range, instruction?}` to the server command.
local function range_command(command, title)
  return function(opts)
    local bufnr = vim.api.nvim_get_current_buf()
    local client = client_for(bufnr)
    if not client then
      return
    end
    local argument = { uri = vim.uri_from_bufnr(bufnr), range = M.range_of(opts, bufnr, client) }
    if opts.args ~= '' then
      argument.instruction = opts.args
    end
    M.execute(client, bufnr, command, { argument }, title)
  end
end

--- :NearlineUsage: the server's `nearline.usage` command when it has one, else `nearline/stats`.
function M.usage()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = vim.lsp.get_clients({ name = config.name, bufnr = bufnr })[1]
    or vim.lsp.get_clients({ name = config.name })[1]
  if not client then
    vim.notify('nearline: the language server is not running (see :checkhealth nearline)', ERROR)
    return
  end
  local provider = client.server_capabilities.executeCommandProvider
  local commands = type(provider) == 'table' and provider.commands or {}
  if vim.list_contains(commands, 'nearline.usage') then
    M.execute(client, bufnr, 'nearline.usage', { { days = 7 } }, 'usage')
    return
  end
  client:request('nearline/stats', vim.empty_dict(), function(err, result)
    if err then
      vim.notify('nearline: nearline/stats failed: ' .. (err.message or vim.inspect(err)), ERROR)
      return
    end
    M.show('usage', M.lines_of(result), 'yaml')
  end, bufnr)
end

--- Turn autocomplete on or off (flip it when `enable` is nil), in the server and here.
---@param enable boolean?
---@return boolean enabled
function M.toggle(enable)
  if enable == nil then
    enable = not status.enabled
  end
  status.enabled = enable
  for _, client in ipairs(vim.lsp.get_clients({ name = config.name })) do
    M.apply_enabled(client)
  end
  vim.cmd('redrawstatus!')
  vim.notify('nearline: autocomplete ' .. (enable and 'on' or 'off'), INFO)
  return enable
end

--- Tell one client's server (and its ghost text here) whether autocomplete is on.
---@param client vim.lsp.Client
function M.apply_enabled(client)
  local enable = status.enabled
  -- The server rebuilds its settings from this and its own defaults: send the start settings too.
  local settings =
    vim.tbl_deep_extend('force', config.server_settings(client), { completion = { enable = enable } })
  client.settings = vim.tbl_deep_extend('force', client.settings or {}, { nearline = settings })
  client:notify('workspace/didChangeConfiguration', { settings = { nearline = settings } })
  require('nearline.inline').enable_client(client, enable)
end

function M.setup()
  local create = vim.api.nvim_create_user_command
  create('NearlineRefactor', range_command('nearline.refactor', 'refactor'), {
    range = true,
    nargs = '*',
    desc = 'nearline: refactor the lines (or the selection) as the arguments say',
  })
  create('NearlineExplain', range_command('nearline.explain', 'explain'), {
    range = true,
    nargs = '*',
    desc = 'nearline: explain the lines (or the selection)',
  })
  create('NearlineUsage', M.usage, { desc = 'nearline: usage and statistics of the server' })
  create('NearlineToggle', function()
    M.toggle()
  end, { desc = 'nearline: turn autocomplete on or off' })
end

return M
