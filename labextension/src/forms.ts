/**
 * Dialog bodies: attach a target, submit a script. The attach form has no password field:
 * a secret is named (environment variable, keyring entry, key file path), never typed in.
 */
import { Widget } from '@lumino/widgets';

import { h } from './dom';
import { Target } from './types';

export const TARGET_TYPES = ['local', 'docker', 'remotedocker', 'remote', 'cluster'];
export const SECRET_KINDS: Record<string, string> = {
  none: 'No secret',
  password_env: 'Environment variable (name)',
  password_keyring: 'Keyring entry (service/user)',
  key_file: 'Private key file (path)'
};

export interface AttachRequest {
  name: string;
  type: string;
  address?: string;
  username?: string;
  base_docker_image?: string;
  python_location?: string;
  password_env?: string;
  password_keyring?: string;
  key_file?: string;
}

function field(label: string, input: HTMLElement): HTMLElement {
  return h('label', { class: 'jp-AmlExec-field' }, h('span', {}, label), input);
}

export class AttachForm extends Widget {
  private readonly inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};

  constructor() {
    super();
    this.addClass('jp-AmlExec-form');
    const input = (name: string, placeholder = '') =>
      (this.inputs[name] = h('input', { name, placeholder, class: 'jp-mod-styled' }));
    const type = h('select', { name: 'type' });
    for (const t of TARGET_TYPES) {
      type.append(h('option', { value: t }, t));
    }
    this.inputs.type = type;
    const secret = h('select', { name: 'secret_kind' });
    for (const [value, label] of Object.entries(SECRET_KINDS)) {
      secret.append(h('option', { value }, label));
    }
    this.inputs.secret_kind = secret;
    this.node.append(
      field('Name', input('name', 'gpuvm')),
      field('Type', type),
      field('Address', input('address', 'host:22')),
      field('User', input('username')),
      field('Base image', input('base_docker_image', 'python:3.11-slim')),
      field('Python', input('python_location', '/usr/bin/python3')),
      field('Secret from', secret),
      field('Secret name or path', input('secret_ref', 'GPUVM_PASSWORD'))
    );
  }

  getValue(): AttachRequest {
    const v = (name: string) => this.inputs[name].value.trim();
    const req: AttachRequest = { name: v('name'), type: v('type') };
    for (const key of ['address', 'username', 'base_docker_image', 'python_location'] as const) {
      if (v(key)) {
        req[key] = v(key);
      }
    }
    const kind = v('secret_kind');
    if (kind !== 'none' && v('secret_ref')) {
      req[kind as 'password_env' | 'password_keyring' | 'key_file'] = v('secret_ref');
    }
    return req;
  }
}

export interface SubmitRequest {
  script: string;
  run_configuration?: string;
  arguments: string[];
}

/** Split an arguments line like a shell would for simple cases: spaces, 'single' and "double" quotes. */
export function splitArguments(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) {
    out.push(m[1] ?? m[2] ?? m[3]);
  }
  return out;
}

export class SubmitForm extends Widget {
  private readonly config: HTMLSelectElement;
  private readonly args: HTMLInputElement;

  constructor(
    readonly script: string,
    targets: Target[]
  ) {
    super();
    this.addClass('jp-AmlExec-form');
    this.config = h('select', { name: 'run_configuration' });
    const names = new Set<string>();
    for (const t of targets) {
      for (const rc of t.run_configurations.length ? t.run_configurations : [t.name]) {
        if (!names.has(rc)) {
          names.add(rc);
          this.config.append(h('option', { value: rc }, `${rc} (${t.type})`));
        }
      }
    }
    this.args = h('input', { name: 'arguments', class: 'jp-mod-styled', placeholder: '--lr 0.1' });
    this.node.append(
      h('p', {}, `Run ${script} on:`),
      field('Run configuration', this.config),
      field('Arguments', this.args)
    );
  }

  getValue(): SubmitRequest {
    return {
      script: this.script,
      run_configuration: this.config.value || undefined,
      arguments: splitArguments(this.args.value)
    };
  }
}
