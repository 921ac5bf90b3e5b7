-- Read by Neovim 0.11+ for the LSP config named 'nearline' (lowest precedence): nearline's own
-- notifications (status, completionReady), also for a plain vim.lsp.config('nearline', {...})
-- with this plugin on the runtimepath. cmd, filetypes, root_markers come from setup() or that
-- call; no lists here, since Neovim 0.11 merges lists index by index.
return { handlers = require('nearline.config').handlers() }
