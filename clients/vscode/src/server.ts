// One `nearline serve` process and its language client: start, bounded restarts after a crash,
// restarts when the command changes, settings pushed with workspace/didChangeConfiguration,
// and the server's own notifications (status, completionReady).
import * as vscode from 'vscode';
import {
  CloseAction,
  type CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorAction,
  type ErrorHandler,
  type ErrorHandlerResult,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions as ProcessOptions,
  State,
} from 'vscode-languageclient/node';

import type { RestTarget } from './cursorRest';
import { INSTALL_HINT, resolveServerCommand } from './serverCommand';
import { SECTION, type ServerOptions, serverOptions, serverSettingsFrom } from './settings';
import type { StatusBar, StatusParams } from './statusBar';

export const STATUS_NOTIFICATION = 'nearline/status';
export const COMPLETION_READY_NOTIFICATION = 'nearline/completionReady';

/** The documents the client handles: files and untitled documents, any language. */
export const DOCUMENT_SELECTOR = [{ scheme: 'file' }, { scheme: 'untitled' }];

/** At most this many restarts after crashes within RESTART_WINDOW_MS. */
export const MAX_RESTARTS = 5;
export const RESTART_WINDOW_MS = 3 * 60 * 1000;

interface CompletionReadyParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
}

/** Counts crashes; says whether one more restart is allowed. */
export class RestartBudget {
  private crashes: number[] = [];

  constructor(
    private readonly max = MAX_RESTARTS,
    private readonly windowMs = RESTART_WINDOW_MS,
  ) {}

  allow(now = Date.now()): boolean {
    this.crashes = this.crashes.filter((t) => now - t < this.windowMs);
    if (this.crashes.length >= this.max) {
      return false;
    }
    this.crashes.push(now);
    return true;
  }

  reset(): void {
    this.crashes = [];
  }
}

export class NearlineServer implements vscode.Disposable, RestTarget {
  private client: LanguageClient | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private lastSent: string | undefined;
  private readonly budget = new RestartBudget();
  private readonly started = new vscode.EventEmitter<LanguageClient>();
  private readonly disposables: vscode.Disposable[] = [this.started];
  /** Fires each time a client (re)starts and runs. */
  readonly onDidStartClient = this.started.event;

  constructor(
    private readonly status: StatusBar,
    private readonly log: vscode.LogOutputChannel,
    /** Command ids the extension registers itself; the client must not register them too. */
    private readonly ownCommands: ReadonlySet<string>,
  ) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((event) => this.onConfigurationChanged(event)),
    );
  }

  /** The running client, after any start or restart in progress. */
  async running(): Promise<LanguageClient | undefined> {
    await this.queue;
    return this.client?.isRunning() ? this.client : undefined;
  }

  /** The running client now, without waiting for a start in progress. */
  runningClient(): LanguageClient | undefined {
    return this.client?.isRunning() ? this.client : undefined;
  }

  /** Whether the client handles this document (DOCUMENT_SELECTOR). */
  handles(document: vscode.TextDocument): boolean {
    return vscode.languages.match(DOCUMENT_SELECTOR, document) > 0;
  }

  start(): Promise<void> {
    return this.enqueue(() => this.doStart());
  }

  restart(): Promise<void> {
    return this.enqueue(async () => {
      this.budget.reset();
      await this.doStop();
      await this.doStart();
    });
  }

  stop(): Promise<void> {
    return this.enqueue(() => this.doStop());
  }

  /** Sends the server's settings (workspace/didChangeConfiguration) if they differ from what
   * it last got. */
  pushSettings(): void {
    const client = this.client;
    const options = serverOptions();
    const key = JSON.stringify(options);
    if (client === undefined || !client.isRunning() || key === this.lastSent) {
      return;
    }
    this.lastSent = key;
    client
      .sendNotification(DidChangeConfigurationNotification.type, { settings: { nearline: options } })
      .catch((error: unknown) => this.log.error(`could not send settings: ${String(error)}`));
  }

  private enqueue(action: () => Promise<void>): Promise<void> {
    const next = this.queue.then(action, action);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async doStart(): Promise<void> {
    const resolution = resolveServerCommand(serverSettingsFrom(vscode.workspace.getConfiguration(SECTION)));
    if (!resolution.ok) {
      this.status.stopped(resolution.message);
      void vscode.window.showErrorMessage(resolution.message);
      return;
    }
    const { command, args, origin } = resolution.server;
    this.log.info(`starting ${[command, ...args].join(' ')} (from ${origin})`);
    // No `transport`: TransportKind.stdio would append `--stdio` to the arguments.
    const processOptions: ProcessOptions = { command, args };
    const client = new LanguageClient('nearline', 'nearline', processOptions, this.clientOptions());
    keepOwnCommands(client, this.ownCommands);
    client.onNotification(STATUS_NOTIFICATION, (params: StatusParams) => this.status.update(params));
    client.onNotification(COMPLETION_READY_NOTIFICATION, (params: CompletionReadyParams) =>
      this.onCompletionReady(client, params),
    );
    // Also after the client restarts a crashed server by itself.
    client.onDidChangeState((event) => {
      if (event.newState === State.Running && client === this.client) {
        this.started.fire(client);
      }
    });
    this.client = client;
    this.stopping = false;
    this.status.update({ state: 'loading', message: 'starting the server' });
    try {
      await client.start();
    } catch (error) {
      const message = `nearline: the server (${[command, ...args].join(' ')}) did not start: ${errorText(error)}. ${INSTALL_HINT}`;
      this.status.stopped(message);
      this.log.error(message);
    }
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.lastSent = undefined;
    if (client === undefined) {
      return;
    }
    this.stopping = true;
    try {
      await client.dispose(2000);
    } catch (error) {
      this.log.error(`stopping the server: ${errorText(error)}`);
    }
  }

  private clientOptions(): LanguageClientOptions {
    return {
      documentSelector: DOCUMENT_SELECTOR,
      outputChannel: this.log,
      initializationOptions: (): ServerOptions => {
        const options = serverOptions();
        this.lastSent = JSON.stringify(options);
        return options;
      },
      errorHandler: this.errorHandler(),
      initializationFailedHandler: (error) => {
        this.status.stopped(`the server did not initialize: ${errorText(error)}`);
        return false;
      },
    };
  }

  private errorHandler(): ErrorHandler {
    return {
      error: (_error, _message, count): ErrorHandlerResult => ({
        action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown,
        handled: true,
      }),
      closed: (): CloseHandlerResult => {
        if (this.stopping) {
          return { action: CloseAction.DoNotRestart, handled: true };
        }
        if (this.budget.allow()) {
          this.log.warn('the server stopped; restarting it');
          this.status.update({ state: 'loading', message: 'restarting the server' });
          return { action: CloseAction.Restart, handled: true };
        }
        const message =
          `nearline: the server stopped ${MAX_RESTARTS + 1} times within ` +
          `${RESTART_WINDOW_MS / 60000} minutes, so it is not restarted again. ` +
          'See the "nearline" output for its errors, then run "nearline: Restart Server".';
        this.status.stopped(message);
        // Shown here: languageclient drops the message when the server dies while starting.
        void vscode.window.showErrorMessage(message, 'Show Output').then((choice) => {
          if (choice !== undefined) {
            this.log.show();
          }
        });
        return { action: CloseAction.DoNotRestart, handled: true };
      },
    };
  }

  private onCompletionReady(client: LanguageClient, params: CompletionReadyParams): void {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined || client !== this.client) {
      return;
    }
    if (client.code2ProtocolConverter.asUri(editor.document.uri) !== params.textDocument.uri) {
      return;
    }
    const position = client.protocol2CodeConverter.asPosition(params.position);
    const selection = editor.selection;
    if (!selection.isEmpty || !selection.active.isEqual(position)) {
      return;
    }
    // Hide first: on a new trigger VS Code keeps showing the suggestion it already shows (here
    // the cut one) rather than the whole one the server now answers with.
    void (async () => {
      await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    })();
  }

  private onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!event.affectsConfiguration(SECTION)) {
      return;
    }
    const config = vscode.workspace.getConfiguration(SECTION);
    this.status.setEnabled(config.get<boolean>('enable', true));
    if (
      event.affectsConfiguration(`${SECTION}.serverCommand`) ||
      event.affectsConfiguration(`${SECTION}.pythonPath`)
    ) {
      void this.restart();
      return;
    }
    this.pushSettings();
  }

  dispose(): void {
    for (const disposable of this.disposables) {
      disposable.dispose();
    }
    void this.stop();
  }
}

/**
 * vscode-languageclient registers a VS Code command for every command in the server's
 * executeCommandProvider. The extension registers some of those ids itself (with arguments
 * from the editor); registering them twice would fail the client's start, so leave them out.
 */
function keepOwnCommands(client: LanguageClient, own: ReadonlySet<string>): void {
  const feature = client.getFeature(ExecuteCommandRequest.method);
  const register = feature.register.bind(feature);
  feature.register = (data) => {
    const commands = (data.registerOptions.commands ?? []).filter((command) => !own.has(command));
    register({ ...data, registerOptions: { ...data.registerOptions, commands } });
  };
}

export function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === 'object' && error !== null && 'message' in error) {
    return String(error.message);
  }
  return String(error);
}
