// The status bar item, fed by the server's nearline/status notifications.
import * as vscode from 'vscode';

/** `nearline/status` params (README, "Protocol extensions"); every field may be missing. */
export interface StatusParams {
  /** "loading" | "ready" | "error" */
  state?: string;
  tier?: string | null;
  model?: string | null;
  source?: string | null;
  latency_ms?: number | null;
  /** who wrote the last answer: "local" or "remote" (the team's completion server) */
  engine?: string | null;
  spend_today_usd?: number | null;
  message?: string | null;
}

const MODEL_CHARS = 14;

export function shortModel(model: string): string {
  return model.length > MODEL_CHARS ? `${model.slice(0, MODEL_CHARS - 1)}…` : model;
}

export function formatSpend(usd: number): string {
  return `$${usd.toFixed(2)}`;
}

/** The item's text and tooltip for one status; pure, so it can be reasoned about alone. */
/** Messages from the extension already start with "nearline: ". */
function plain(message: string): string {
  return message.replace(/^nearline: /, '');
}

export function describe(
  status: StatusParams,
  showSpend: boolean,
): { text: string; tooltip: string; warning: boolean } {
  if (status.state === 'loading') {
    return {
      text: '$(sync~spin) nearline',
      tooltip: `nearline: ${plain(status.message || 'loading the model')}`,
      warning: false,
    };
  }
  if (status.state === 'error') {
    return {
      text: '$(warning) nearline',
      tooltip: `nearline: ${plain(status.message || 'the server reported an error')}`,
      warning: true,
    };
  }
  const where = status.engine === 'remote' ? 'remote' : status.tier || 'local';
  const parts = [where];
  if (status.model) {
    parts.push(shortModel(status.model));
  }
  if (typeof status.latency_ms === 'number') {
    parts.push(`${Math.round(status.latency_ms)} ms`);
  }
  if (showSpend) {
    parts.push(formatSpend(status.spend_today_usd ?? 0));
  }
  const details = [
    `tier: ${status.tier || 'local'}`,
    status.engine ? `engine: ${status.engine}` : undefined,
    status.model ? `model: ${status.model}` : undefined,
    status.source ? `last answer: ${status.source}` : undefined,
    typeof status.latency_ms === 'number' ? `latency: ${status.latency_ms} ms` : undefined,
    `spent today: ${formatSpend(status.spend_today_usd ?? 0)}`,
    status.message ? status.message : undefined,
    'Click for usage.',
  ].filter((line): line is string => line !== undefined);
  return { text: `$(zap) ${parts.join(' · ')}`, tooltip: details.join('\n'), warning: false };
}

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private last: StatusParams = { state: 'loading', message: 'starting the server' };
  private enabled = true;

  constructor(
    command: string,
    private readonly showSpend: () => boolean,
  ) {
    this.item = vscode.window.createStatusBarItem('nearline.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'nearline';
    this.item.command = command;
    this.render();
    this.item.show();
  }

  update(status: StatusParams): void {
    // A bare "ready" (the model finished loading) keeps the last answer's figures.
    this.last =
      status.state === 'ready' && status.latency_ms === undefined && this.last.state === 'ready'
        ? { ...this.last, ...status, latency_ms: this.last.latency_ms, source: this.last.source }
        : status;
    this.render();
  }

  /** The server is not running (stopped, crashed, not found). */
  stopped(message: string): void {
    this.update({ state: 'error', message });
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.render();
  }

  refresh(): void {
    this.render();
  }

  private render(): void {
    const { text, tooltip, warning } = describe(this.last, this.showSpend());
    if (!this.enabled && !warning) {
      this.item.text = '$(circle-slash) nearline';
      this.item.tooltip = 'nearline: autocomplete is off (nearline: Toggle Autocomplete turns it on)';
    } else {
      this.item.text = text;
      this.item.tooltip = tooltip;
    }
    this.item.backgroundColor = warning
      ? new vscode.ThemeColor('statusBarItem.warningBackground')
      : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
