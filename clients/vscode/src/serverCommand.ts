// Which command starts `nearline serve`: the nearline.serverCommand setting, else `nearline` on
// PATH, else `<nearline.pythonPath> -m nearline serve`.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const INSTALL_HINT =
  'Install it with `pip install nearline` (from a checkout: `scripts/setup_venv.sh`), ' +
  'then set "nearline.serverCommand" or "nearline.pythonPath" if `nearline` is not on PATH.';

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where the command came from, for messages. */
  origin: 'nearline.serverCommand' | 'PATH' | 'nearline.pythonPath';
}

export type Resolution = { ok: true; server: ServerCommand } | { ok: false; message: string };

export interface ServerSettings {
  serverCommand: unknown;
  pythonPath: unknown;
}

/** A string setting is split on whitespace; the array form keeps paths with spaces whole. */
export function commandParts(value: unknown): string[] {
  if (Array.isArray(value)) {
    return value.filter((part): part is string => typeof part === 'string' && part !== '');
  }
  if (typeof value === 'string') {
    return value.trim().split(/\s+/).filter((part) => part !== '');
  }
  return [];
}

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The absolute path of `name` (a path, or a bare name looked up on PATH), if it runs. */
export function findExecutable(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string | undefined {
  if (name.includes('/') || name.includes('\\')) {
    return isExecutableFile(name) ? path.resolve(name) : undefined;
  }
  const extensions =
    platform === 'win32' ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';')] : [''];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') {
      continue;
    }
    for (const ext of extensions) {
      const candidate = path.join(dir, name + ext);
      if (isExecutableFile(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

export function resolveServerCommand(
  settings: ServerSettings,
  env: NodeJS.ProcessEnv = process.env,
): Resolution {
  const configured = commandParts(settings.serverCommand);
  if (configured.length > 0) {
    const [first, ...args] = configured;
    const command = findExecutable(first, env);
    if (command === undefined) {
      return {
        ok: false,
        message: `nearline: the server command "${first}" (from nearline.serverCommand) was not found. ${INSTALL_HINT}`,
      };
    }
    return { ok: true, server: { command, args, origin: 'nearline.serverCommand' } };
  }
  const onPath = findExecutable('nearline', env);
  if (onPath !== undefined) {
    return { ok: true, server: { command: onPath, args: ['serve'], origin: 'PATH' } };
  }
  const python = typeof settings.pythonPath === 'string' ? settings.pythonPath.trim() : '';
  if (python !== '') {
    const command = findExecutable(python, env);
    if (command === undefined) {
      return {
        ok: false,
        message: `nearline: the Python interpreter "${python}" (from nearline.pythonPath) was not found. ${INSTALL_HINT}`,
      };
    }
    return {
      ok: true,
      server: { command, args: ['-m', 'nearline', 'serve'], origin: 'nearline.pythonPath' },
    };
  }
  return {
    ok: false,
    message: `nearline: the nearline language server was not found on PATH. ${INSTALL_HINT}`,
  };
}
