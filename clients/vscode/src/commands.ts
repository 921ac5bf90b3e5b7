// The palette commands: tasks on the selection (served by the server's workspace/executeCommand),
// usage, the autocomplete toggle and a server restart.
import * as vscode from 'vscode';
import { ExecuteCommandRequest, ResponseError } from 'vscode-languageclient/node';

import { errorText, type NearlineServer } from './server';
import { SECTION } from './settings';

interface Task {
  id: string;
  /** What the progress notification and messages call it. */
  doing: string;
  name: string;
  asksInstruction?: boolean;
}

export const TASKS: readonly Task[] = [
  { id: 'nearline.refactor', name: 'Refactor', doing: 'refactoring the selection' },
  { id: 'nearline.explain', name: 'Explain', doing: 'explaining the selection' },
  { id: 'nearline.writeTests', name: 'Write tests', doing: 'writing tests' },
  { id: 'nearline.fix', name: 'Fix', doing: 'fixing the selection' },
  { id: 'nearline.ask', name: 'Ask', doing: 'working on your request', asksInstruction: true },
];

export const SHOW_USAGE = 'nearline.showUsage';
export const TOGGLE = 'nearline.toggleAutocomplete';
export const RESTART = 'nearline.restartServer';
/** Server command for usage, where the server offers it; else the nearline/stats request. */
export const USAGE_SERVER_COMMAND = 'nearline.usage';
export const STATS_REQUEST = 'nearline/stats';

export const OWN_COMMANDS: ReadonlySet<string> = new Set([
  ...TASKS.map((task) => task.id),
  SHOW_USAGE,
  TOGGLE,
  RESTART,
]);

/** The argument of a task command: the document, the range (LSP), the person's instruction. */
export interface TaskArgument {
  uri: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  instruction?: string;
}

export function registerCommands(
  server: NearlineServer,
  usageChannel: vscode.OutputChannel,
  log: vscode.LogOutputChannel,
): vscode.Disposable[] {
  return [
    // From the palette: the selection. With arguments (a code action's command, another
    // extension): those, unchanged.
    ...TASKS.map((task) =>
      vscode.commands.registerCommand(task.id, (...args: unknown[]) =>
        args.length > 0 ? sendTask(server, task, args, log) : runTask(server, task, log),
      ),
    ),
    vscode.commands.registerCommand(SHOW_USAGE, () => showUsage(server, usageChannel)),
    vscode.commands.registerCommand(TOGGLE, () => toggleAutocomplete(server)),
    vscode.commands.registerCommand(RESTART, () => server.restart()),
  ];
}

async function runTask(server: NearlineServer, task: Task, log: vscode.LogOutputChannel): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined) {
    void vscode.window.showInformationMessage(`nearline: open a file and select code to ${task.name.toLowerCase()}.`);
    return;
  }
  let instruction: string | undefined;
  if (task.asksInstruction) {
    instruction = await vscode.window.showInputBox({
      title: 'nearline: Ask',
      prompt: 'What should nearline do with the selection (or the current line)?',
      placeHolder: 'e.g. use pathlib instead of os.path',
      ignoreFocusOut: true,
    });
    if (instruction === undefined || instruction.trim() === '') {
      return;
    }
  }
  const client = await server.running();
  if (client === undefined) {
    void vscode.window.showWarningMessage('nearline: the server is not running; run "nearline: Restart Server".');
    return;
  }
  const selection = editor.selection;
  const range = selection.isEmpty ? editor.document.lineAt(selection.active.line).range : selection;
  const argument: TaskArgument = {
    uri: client.code2ProtocolConverter.asUri(editor.document.uri),
    range: client.code2ProtocolConverter.asRange(range),
    ...(instruction !== undefined ? { instruction: instruction.trim() } : {}),
  };
  await sendTask(server, task, [argument], log);
}

const METHOD_NOT_FOUND = -32601;

async function sendTask(
  server: NearlineServer,
  task: Task,
  args: unknown[],
  log: vscode.LogOutputChannel,
): Promise<void> {
  const client = await server.running();
  if (client === undefined) {
    void vscode.window.showWarningMessage('nearline: the server is not running; run "nearline: Restart Server".');
    return;
  }
  let cancelled = false;
  try {
    const result: unknown = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `nearline: ${task.doing}…`, cancellable: true },
      (_progress, token) => {
        token.onCancellationRequested(() => (cancelled = true));
        return client.sendRequest(ExecuteCommandRequest.type, { command: task.id, arguments: args }, token);
      },
    );
    showResult(task, result, log);
  } catch (error) {
    if (cancelled || error instanceof vscode.CancellationError) {
      return;
    }
    const notThere = error instanceof ResponseError && error.code === METHOD_NOT_FOUND;
    void vscode.window.showWarningMessage(
      notThere
        ? `nearline: ${task.name} is not available in this version of the server (${errorText(error)}).`
        : `nearline: ${task.name} did not run. The server said: ${errorText(error)}`,
    );
  }
}

/**
 * The server presents a task's outcome itself (window/showMessage, window/showDocument,
 * workspace/applyEdit) and answers with a summary such as `{ok, message}`; only a bare text
 * answer is shown here.
 */
function showResult(task: Task, result: unknown, log: vscode.LogOutputChannel): void {
  log.info(`${task.id}: ${JSON.stringify(result)}`);
  if (typeof result === 'string' && result.trim() !== '') {
    void vscode.window.showInformationMessage(`nearline: ${task.name}: ${result}`);
  }
}

async function showUsage(server: NearlineServer, channel: vscode.OutputChannel): Promise<void> {
  const client = await server.running();
  if (client === undefined) {
    void vscode.window.showWarningMessage('nearline: the server is not running; run "nearline: Restart Server".');
    return;
  }
  try {
    const commands = client.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
    const usage: unknown = commands.includes(USAGE_SERVER_COMMAND)
      ? await client.sendRequest(ExecuteCommandRequest.type, { command: USAGE_SERVER_COMMAND, arguments: [] })
      : await client.sendRequest(STATS_REQUEST, null);
    channel.clear();
    channel.appendLine(formatUsage(usage));
    channel.show(true);
  } catch (error) {
    void vscode.window.showWarningMessage(`nearline: could not get usage: ${errorText(error)}`);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const LAST_REQUESTS = 5;

interface RequestRecord {
  source?: unknown;
  latency_ms?: unknown;
  chars?: unknown;
}

/** Counters one per line; the recent requests as latency percentiles and the last few. */
export function formatUsage(usage: unknown): string {
  if (typeof usage === 'string') {
    return usage;
  }
  if (typeof usage !== 'object' || usage === null) {
    return String(usage);
  }
  const lines = [`nearline usage (${new Date().toLocaleTimeString()})`, ''];
  for (const [key, value] of Object.entries(usage)) {
    if (key === 'recent' && Array.isArray(value)) {
      lines.push(...formatRecent(value as RequestRecord[]));
    } else if (typeof value === 'object' && value !== null) {
      lines.push(`${key}: ${JSON.stringify(value)}`);
    } else {
      lines.push(`${key}: ${String(value)}`);
    }
  }
  return lines.join('\n');
}

function formatRecent(records: RequestRecord[]): string[] {
  const latencies = records
    .map((record) => record.latency_ms)
    .filter((ms): ms is number => typeof ms === 'number')
    .sort((a, b) => a - b);
  if (latencies.length === 0) {
    return ['recent: no requests yet'];
  }
  const last = records
    .slice(-LAST_REQUESTS)
    .map((r) => `${String(r.source)} ${String(r.latency_ms)} ms, ${String(r.chars)} chars`);
  return [
    `recent: ${latencies.length} requests; latency p50 ${percentile(latencies, 50)} ms, ` +
      `p95 ${percentile(latencies, 95)} ms`,
    `last: ${last.join('; ')}`,
  ];
}

async function toggleAutocomplete(server: NearlineServer): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const enable = !config.get<boolean>('enable', true);
  const seen = config.inspect<boolean>('enable');
  const target =
    seen?.workspaceFolderValue !== undefined
      ? vscode.ConfigurationTarget.WorkspaceFolder
      : seen?.workspaceValue !== undefined
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
  await config.update('enable', enable, target);
  // The configuration listener sends the change too; this one makes sure it goes out now.
  server.pushSettings();
  void vscode.window.setStatusBarMessage(`nearline: autocomplete ${enable ? 'on' : 'off'}`, 3000);
}
