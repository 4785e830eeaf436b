/**
 * The "AML compute" sidebar for the project of the file browser's current folder: targets with
 * type and reachability (attach, detach, prepare), then the project's runs with live status.
 * The runs list is re-read every POLL_MS while the panel is visible: one indexed query a time,
 * which also shows runs submitted from a kernel or the CLI without a reload.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { AmlClient } from './client';
import { h } from './dom';
import { AttachForm, AttachRequest } from './forms';
import { metricText, shortDuration, statusClass, targetWhere } from './logic/format';
import { runsChanged } from './logic/state';
import { urls } from './logic/urls';
import { Check, Run, RunPage, Target, Targets } from './types';

export const POLL_MS = 1500;
const PAGE = 50;

export interface SidebarActions {
  openRun(id: string): void;
  openPrepare(path: string, target: string): void;
}

export class ComputeSidebar extends Widget {
  private path = '';
  private project: Targets['project'] | null = null;
  private targets: Target[] = [];
  private readonly checks = new Map<string, Check | 'checking'>();
  private runs: Run[] = [];
  private timer = 0;
  private readonly projectLine = h('div', { class: 'jp-AmlExec-project' });
  private readonly targetList = h('ul', { class: 'jp-AmlExec-targets' });
  private readonly runList = h('ul', { class: 'jp-AmlExec-runs' });
  private readonly message = h('div', { class: 'jp-AmlExec-message' });

  constructor(
    private readonly client: AmlClient,
    private readonly actions: SidebarActions
  ) {
    super();
    this.id = 'jupyter-amlexec-sidebar';
    this.addClass('jp-AmlExec-sidebar');
    this.title.caption = 'AML compute';
    const attach = h('button', { class: 'jp-mod-styled jp-AmlExec-attach', onclick: () => void this.attach() }, 'Attach target…');
    const refresh = h('button', { class: 'jp-mod-styled', title: 'Refresh', onclick: () => void this.reload() }, '⟳');
    this.node.append(
      h('header', {}, h('h2', {}, 'AML compute'), refresh),
      this.projectLine,
      this.message,
      h('h3', {}, 'Compute targets'),
      this.targetList,
      attach,
      h('h3', {}, 'Runs'),
      this.runList
    );
  }

  get currentPath(): string {
    return this.path;
  }

  get targetsList(): Target[] {
    return this.targets;
  }

  /** The file browser moved: show the project of its folder. */
  setPath(path: string): void {
    if (path !== this.path || !this.project) {
      this.path = path;
      void this.reload();
    }
  }

  protected onAfterShow(): void {
    void this.reload();
    this.startPolling();
  }

  protected onAfterHide(): void {
    window.clearInterval(this.timer);
    this.timer = 0;
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  private startPolling(): void {
    if (!this.timer) {
      this.timer = window.setInterval(() => void this.loadRuns(), POLL_MS);
    }
  }

  async reload(): Promise<void> {
    const path = this.path;
    try {
      const doc = await this.client.json<Targets>(urls.targets(this.client.baseUrl, path));
      if (path !== this.path) {
        return; // the file browser moved on meanwhile: a newer reload shows that folder
      }
      this.project = doc.project;
      this.targets = doc.targets;
      this.message.textContent = '';
      this.checks.clear();
      this.renderTargets();
      for (const t of doc.targets) {
        void this.check(t.name);
      }
      await this.loadRuns(true);
    } catch (err) {
      this.message.textContent = (err as Error).message;
    }
  }

  private async check(name: string): Promise<void> {
    const path = this.path;
    this.checks.set(name, 'checking');
    this.renderTargets();
    let result: Check;
    try {
      result = await this.client.json<Check>(urls.check(this.client.baseUrl, path, name));
    } catch (err) {
      result = { id: name, reachable: false, message: (err as Error).message };
    }
    if (path === this.path) {
      this.checks.set(name, result);
      this.renderTargets();
    }
  }

  async loadRuns(force = false): Promise<void> {
    if (!this.project) {
      return;
    }
    const path = this.path;
    try {
      const page = await this.client.json<RunPage>(urls.runs(this.client.baseUrl, { path, limit: PAGE }));
      if (path !== this.path) {
        return;
      }
      if (force || runsChanged(this.runs, page.runs)) {
        this.runs = page.runs;
        this.renderRuns();
      }
    } catch (err) {
      this.message.textContent = (err as Error).message;
    }
  }

  private renderTargets(): void {
    this.projectLine.textContent = this.project
      ? `Project ${this.project.name} (${this.project.path || 'root folder'})`
      : '';
    const items = this.targets.map(t => {
      const check = this.checks.get(t.name);
      const state = check === undefined || check === 'checking' ? 'checking' : check.reachable ? 'reachable' : 'unreachable';
      const title = check && check !== 'checking' && check.message ? check.message : state;
      return h(
        'li',
        { class: 'jp-AmlExec-target', 'data-target': t.name },
        h('span', { class: 'jp-AmlExec-targetName' }, t.name),
        h('span', { class: 'jp-AmlExec-targetType' }, t.type),
        h('span', { class: `jp-AmlExec-reach jp-AmlExec-${state}`, title, 'data-reach': state }, state),
        h('span', { class: 'jp-AmlExec-where' }, targetWhere(t)),
        state === 'unreachable' ? h('div', { class: 'jp-AmlExec-why' }, title) : null,
        h(
          'span',
          { class: 'jp-AmlExec-actions' },
          h('button', { class: 'jp-mod-styled', onclick: () => this.actions.openPrepare(this.path, t.name) }, 'Prepare'),
          h('button', { class: 'jp-mod-styled', onclick: () => void this.detach(t.name) }, 'Detach')
        )
      );
    });
    this.targetList.replaceChildren(...items);
  }

  private renderRuns(): void {
    const items = this.runs.map(r => {
      const metrics = Object.entries(r.metrics)
        .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
        .slice(0, 3)
        .map(([k, v]) => `${k}=${metricText(v)}`)
        .join(' ');
      return h(
        'li',
        { class: 'jp-AmlExec-run', 'data-run': r.id, title: r.id, onclick: () => this.actions.openRun(r.id) },
        h('span', { class: `jp-AmlExec-status ${statusClass(r.status)}`, 'data-status': r.status }, r.status),
        h('span', { class: 'jp-AmlExec-runNumber' }, `#${r.run_number}`),
        h('span', { class: 'jp-AmlExec-script' }, [r.script_name, ...r.arguments].join(' ')),
        h('span', { class: 'jp-AmlExec-runTarget' }, r.target),
        h('span', { class: 'jp-AmlExec-duration' }, shortDuration(r.duration)),
        metrics ? h('span', { class: 'jp-AmlExec-runMetrics' }, metrics) : null
      );
    });
    this.runList.replaceChildren(...(items.length ? items : [h('li', {}, 'No runs yet.')]));
  }

  private async attach(): Promise<void> {
    const result = await showDialog<AttachRequest>({
      title: 'Attach a compute target',
      body: new AttachForm(),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Attach' })]
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    try {
      await this.client.post(urls.targets(this.client.baseUrl, this.path), result.value);
      await this.reload();
    } catch (err) {
      await showErrorMessage('Attach failed', (err as Error).message);
    }
  }

  private async detach(name: string): Promise<void> {
    const ok = await showDialog({
      title: `Detach ${name}?`,
      body: `Removes aml_config/${name}.compute and the run configurations that use it.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Detach' })]
    });
    if (!ok.button.accept) {
      return;
    }
    try {
      await this.client.json(urls.target(this.client.baseUrl, this.path, name), { method: 'DELETE' });
      await this.reload();
    } catch (err) {
      await showErrorMessage('Detach failed', (err as Error).message);
    }
  }
}
