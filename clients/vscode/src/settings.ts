// The extension's settings, and the part of them the server reads, in the server's own format
// (snake_case, nested). The server rejects keys it does not know, so only those are sent, and
// only when the person set them.
import * as vscode from 'vscode';

export const SECTION = 'nearline';

/** Settings whose change needs a new server process. */
export const RESTART_KEYS = ['serverCommand', 'pythonPath'] as const;

export interface ServerOptions {
  model?: { path?: string; n_gpu_layers?: number };
  completion?: { enable?: boolean; time_budget_ms?: number };
}

/** The value of `key` if the person set it anywhere (user, workspace, folder), else undefined. */
function explicit<T>(config: vscode.WorkspaceConfiguration, key: string): T | undefined {
  const seen = config.inspect<T>(key);
  if (seen === undefined) {
    return undefined;
  }
  const set =
    seen.workspaceFolderLanguageValue ??
    seen.workspaceLanguageValue ??
    seen.globalLanguageValue ??
    seen.workspaceFolderValue ??
    seen.workspaceValue ??
    seen.globalValue;
  return set === null ? undefined : set;
}

function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

export function serverOptions(
  config: vscode.WorkspaceConfiguration = vscode.workspace.getConfiguration(SECTION),
): ServerOptions {
  const options: ServerOptions = {};
  const modelPath = explicit<string>(config, 'model.path');
  if (typeof modelPath === 'string' && modelPath.trim() !== '') {
    options.model = { ...options.model, path: modelPath.trim() };
  }
  const gpuLayers = explicit<number>(config, 'model.gpuLayers');
  if (isInteger(gpuLayers)) {
    options.model = { ...options.model, n_gpu_layers: gpuLayers };
  }
  const enable = explicit<boolean>(config, 'enable');
  if (typeof enable === 'boolean') {
    options.completion = { ...options.completion, enable };
  }
  const budget = explicit<number>(config, 'completion.timeBudgetMs');
  if (isInteger(budget)) {
    options.completion = { ...options.completion, time_budget_ms: budget };
  }
  return options;
}

export function serverSettingsFrom(config: vscode.WorkspaceConfiguration): {
  serverCommand: unknown;
  pythonPath: unknown;
} {
  return {
    serverCommand: config.get<unknown>('serverCommand'),
    pythonPath: config.get<unknown>('pythonPath'),
  };
}
