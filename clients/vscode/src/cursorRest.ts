// `nearline/cursorRest` (client → server): where the cursor rests, so the server can evaluate
// the prompt there before the person types. Sent when the cursor has not moved for 200 ms in a
// document the client handles (moves made by typing count too), and when such a document becomes
// the active one; only the newest place, and never the same place twice in a row. Off with the
// `nearline.warmAtCursor` setting (and while autocomplete, `nearline.enable`, is off).
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';

import { SECTION } from './settings';

export const CURSOR_REST_NOTIFICATION = 'nearline/cursorRest';
/** How long the cursor must stay put before its place is sent. */
export const REST_DELAY_MS = 200;
export const WARM_AT_CURSOR = 'warmAtCursor';

export interface CursorRestParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
}

/** What CursorRest needs from the server: its running client, its documents, its starts. */
export interface RestTarget {
  /** The running language client, if any (no waiting). */
  runningClient(): LanguageClient | undefined;
  /** Whether the client handles this document (its document selector). */
  handles(document: vscode.TextDocument): boolean;
  /** Fires each time a client (re)starts and runs. */
  readonly onDidStartClient: vscode.Event<LanguageClient>;
}

/** Whether the settings allow sending: `nearline.warmAtCursor` and `nearline.enable`. */
export function warmAtCursorEnabled(
  config: vscode.WorkspaceConfiguration = vscode.workspace.getConfiguration(SECTION),
): boolean {
  return config.get<boolean>(WARM_AT_CURSOR, true) !== false && config.get<boolean>('enable', true) !== false;
}

export class CursorRest implements vscode.Disposable {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The last place sent, and to which client (a restarted server knows nothing). */
  private lastSent: { client: LanguageClient; key: string } | undefined;
  private enabled = warmAtCursorEnabled();
  private readonly disposables: vscode.Disposable[];

  constructor(
    private readonly target: RestTarget,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables = [
      vscode.window.onDidChangeTextEditorSelection((event) => this.schedule(event.textEditor)),
      vscode.window.onDidChangeActiveTextEditor((editor) => this.schedule(editor)),
      target.onDidStartClient(() => {
        this.lastSent = undefined;
        this.schedule(vscode.window.activeTextEditor);
      }),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (
          event.affectsConfiguration(`${SECTION}.${WARM_AT_CURSOR}`) ||
          event.affectsConfiguration(`${SECTION}.enable`)
        ) {
          this.setEnabled(warmAtCursorEnabled());
        }
      }),
    ];
  }

  private setEnabled(enabled: boolean): void {
    if (enabled === this.enabled) {
      return;
    }
    this.enabled = enabled;
    this.log.info(`cursor rest notifications ${enabled ? 'on' : 'off'}`);
    if (enabled) {
      this.lastSent = undefined;
      this.schedule(vscode.window.activeTextEditor);
    } else {
      this.cancel();
    }
  }

  /** (Re)starts the 200 ms timer for the editor's cursor; any earlier place is dropped. */
  schedule(editor: vscode.TextEditor | undefined): void {
    this.cancel();
    if (!this.enabled || editor === undefined || editor !== vscode.window.activeTextEditor) {
      return;
    }
    if (this.target.runningClient() === undefined || !this.target.handles(editor.document)) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send(editor);
    }, REST_DELAY_MS);
  }

  private cancel(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private send(editor: vscode.TextEditor): void {
    const client = this.target.runningClient();
    if (
      client === undefined ||
      !this.enabled ||
      editor !== vscode.window.activeTextEditor ||
      editor.document.isClosed
    ) {
      return;
    }
    const params: CursorRestParams = {
      textDocument: { uri: client.code2ProtocolConverter.asUri(editor.document.uri) },
      position: client.code2ProtocolConverter.asPosition(editor.selection.active),
    };
    const key = `${params.textDocument.uri} ${params.position.line} ${params.position.character}`;
    if (this.lastSent?.client === client && this.lastSent.key === key) {
      return;
    }
    this.lastSent = { client, key };
    client.sendNotification(CURSOR_REST_NOTIFICATION, params).catch((error: unknown) => {
      this.log.warn(`could not send ${CURSOR_REST_NOTIFICATION}: ${String(error)}`);
    });
  }

  dispose(): void {
    this.cancel();
    for (const disposable of this.disposables) {
      disposable.dispose();
    }
    this.disposables.length = 0;
  }
}
