// Entry point: the status bar, the server, where the cursor rests, and the commands.
import * as vscode from 'vscode';

import { OWN_COMMANDS, registerCommands, SHOW_USAGE } from './commands';
import { CursorRest } from './cursorRest';
import { NearlineServer } from './server';
import { SECTION } from './settings';
import { StatusBar } from './statusBar';

let server: NearlineServer | undefined;
let cursorRest: CursorRest | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('nearline', { log: true });
  const usage = vscode.window.createOutputChannel('nearline usage');
  const status = new StatusBar(SHOW_USAGE, () =>
    vscode.workspace.getConfiguration(SECTION).get<boolean>('budget.showInStatusBar', true),
  );
  status.setEnabled(vscode.workspace.getConfiguration(SECTION).get<boolean>('enable', true));
  server = new NearlineServer(status, log, OWN_COMMANDS);
  cursorRest = new CursorRest(server, log);
  context.subscriptions.push(
    log,
    usage,
    status,
    cursorRest,
    server,
    ...registerCommands(server, usage, log),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(`${SECTION}.budget.showInStatusBar`)) {
        status.refresh();
      }
    }),
  );
  void server.start();
}

export async function deactivate(): Promise<void> {
  cursorRest?.dispose();
  cursorRest = undefined;
  await server?.stop();
  server = undefined;
}
