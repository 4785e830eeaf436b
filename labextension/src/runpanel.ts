/**
 * The main-area panel of one run: status, live log (followed over SSE from a cursor, resumed
 * after a drop), metrics with a plot per numeric series, outputs to open or download, Cancel
 * and Rerun. What it shows is `logic/state.reduce` over the events.
 */
import { Widget } from '@lumino/widgets';

import { AmlClient } from './client';
import { h, svg } from './dom';
import { bytes, metricText, shortDuration, statusClass } from './logic/format';
import { numericPoints, scale } from './logic/plot';
import { FollowEvent, initialView, reduce, RunView } from './logic/state';
import { urls } from './logic/urls';
import { Artifact, MetricSeries, Run } from './types';

const PLOT_W = 260;
const PLOT_H = 80;
const RETRY_MS = 1000;

export class RunPanel extends Widget {
  private view: RunView = initialView();
  private run: Run | null = null;
  private readonly abort = new AbortController();
  private frame = 0;
  private readonly header = h('div', { class: 'jp-AmlExec-runHeader' });
  private readonly log = h('pre', { class: 'jp-AmlExec-log' });
  private readonly control = h('pre', { class: 'jp-AmlExec-log jp-AmlExec-controlLog' });
  private readonly metrics = h('div', { class: 'jp-AmlExec-metrics' });
  private readonly outputs = h('ul', { class: 'jp-AmlExec-outputs' });

  constructor(
    private readonly client: AmlClient,
    readonly runId: string,
    private readonly onRerun: (run: Run) => void
  ) {
    super();
    this.id = `jp-amlexec-run-${runId}`;
    this.addClass('jp-AmlExec-runPanel');
    this.title.label = runId;
    this.title.closable = true;
    this.node.append(
      this.header,
      h('h3', {}, 'Log'),
      this.log,
      h('details', {}, h('summary', {}, 'Control log (prepare, start, collect)'), this.control),
      h('h3', {}, 'Metrics'),
      this.metrics,
      h('h3', {}, 'Outputs'),
      this.outputs
    );
    void this.start();
  }

  dispose(): void {
    this.abort.abort();
    super.dispose();
  }

  private async start(): Promise<void> {
    try {
      this.run = await this.client.json<Run>(urls.run(this.client.baseUrl, this.runId));
      this.view = { ...this.view, status: this.run.status };
      this.title.label = `Run ${this.run.run_number}: ${this.run.script_name}`;
      this.schedule();
      await this.follow();
    } catch (err) {
      if (!this.abort.signal.aborted) {
        this.header.textContent = `Cannot read run ${this.runId}: ${(err as Error).message}`;
      }
    }
  }

  /** Follow until the run is done; a dropped stream resumes from the last cursor. */
  private async follow(): Promise<void> {
    while (!this.view.done && !this.abort.signal.aborted) {
      try {
        const url = urls.events(this.client.baseUrl, this.runId, this.view.cursor ?? undefined);
        for await (const ev of this.client.events(url, {}, this.abort.signal)) {
          this.apply({ event: ev.event, data: JSON.parse(ev.data) } as FollowEvent);
          if (ev.id) {
            this.view = { ...this.view, cursor: ev.id }; // a step's end: where a resumed stream starts
          }
        }
      } catch (err) {
        if (this.abort.signal.aborted) {
          return;
        }
        console.warn('jupyter-amlexec: follow interrupted, resuming', err);
      }
      if (!this.view.done) {
        await new Promise(r => setTimeout(r, RETRY_MS));
      }
    }
    await this.refresh();
  }

  private apply(ev: FollowEvent): void {
    this.view = reduce(this.view, ev);
    this.schedule();
  }

  /** Render at most once a frame, however fast events come. */
  private schedule(): void {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  private async refresh(): Promise<void> {
    const base = this.client.baseUrl;
    const [run, series, artifacts] = await Promise.all([
      this.client.json<Run>(urls.run(base, this.runId)),
      this.client.json<MetricSeries>(urls.metrics(base, this.runId)),
      this.client.json<{ artifacts: Artifact[] }>(urls.artifacts(base, this.runId))
    ]);
    this.run = run;
    this.view = { ...this.view, metrics: { ...series, ...this.view.metrics } };
    this.renderOutputs(artifacts.artifacts);
    this.schedule();
  }

  private render(): void {
    this.renderHeader();
    const atBottom = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 4;
    const text = (this.view.truncated ? '… (start of the log cut)\n' : '') + this.view.driver;
    if (this.log.textContent !== text) {
      this.log.textContent = text;
      if (atBottom) {
        this.log.scrollTop = this.log.scrollHeight;
      }
    }
    this.control.textContent = this.view.control;
    this.renderMetrics();
  }

  private renderHeader(): void {
    const v = this.view;
    const run = this.run;
    // Cancel only while the run can still be stopped; a finished run offers Rerun alone
    const cancel = v.done
      ? null
      : h('button', { class: 'jp-mod-styled jp-mod-warn', onclick: () => void this.cancel() }, 'Cancel');
    const rerun = h('button', { class: 'jp-mod-styled', onclick: () => void this.rerun() }, 'Rerun');
    const exit = v.exitCode !== null ? ` (exit code ${v.exitCode})` : '';
    const parts: (HTMLElement | null)[] = [
      h('span', { class: `jp-AmlExec-status ${statusClass(v.status)}`, 'data-status': v.status }, v.status + exit),
      h('span', { class: 'jp-AmlExec-runId' }, this.runId),
      run ? h('span', {}, `${run.target} · ${[run.script_name, ...run.arguments].join(' ')}`) : null,
      run?.duration ? h('span', {}, shortDuration(run.duration)) : null,
      v.detail ? h('span', { class: 'jp-AmlExec-detail' }, v.detail) : null,
      run?.error ? h('div', { class: 'jp-AmlExec-error' }, run.error) : null,
      h('span', { class: 'jp-AmlExec-actions' }, cancel, rerun)
    ];
    this.header.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
  }

  private renderMetrics(): void {
    const blocks: HTMLElement[] = [];
    for (const [name, series] of Object.entries(this.view.metrics)) {
      const last = series[series.length - 1];
      const scaled = scale(numericPoints(series), PLOT_W, PLOT_H);
      const block = h(
        'div',
        { class: 'jp-AmlExec-metric', 'data-metric': name },
        h('div', {}, h('b', {}, name), ` ${metricText(last?.value)} (${series.length} value${series.length === 1 ? '' : 's'})`)
      );
      if (scaled) {
        const plot = svg('svg', { width: String(PLOT_W), height: String(PLOT_H), class: 'jp-AmlExec-plot' });
        plot.append(svg('polyline', { points: scaled.points, fill: 'none', stroke: 'currentColor', 'stroke-width': '1.5' }));
        block.append(plot);
      }
      blocks.push(block);
    }
    this.metrics.replaceChildren(...(blocks.length ? blocks : [h('span', {}, 'No metrics yet.')]));
  }

  private renderOutputs(artifacts: Artifact[]): void {
    const base = this.client.baseUrl;
    const items = artifacts.map(a => {
      const href = this.client.withToken(urls.artifact(base, this.runId, a.path));
      return h(
        'li',
        {},
        h('a', { href, target: '_blank', rel: 'noopener' }, a.path),
        ` ${bytes(a.size)} `,
        h('a', { href, download: a.path.split('/').pop() || a.path, class: 'jp-AmlExec-download' }, 'download')
      );
    });
    this.outputs.replaceChildren(...(items.length ? items : [h('li', {}, 'No outputs.')]));
  }

  private async cancel(): Promise<void> {
    await this.client.post<Run>(urls.cancel(this.client.baseUrl, this.runId));
  }

  private async rerun(): Promise<void> {
    const run = await this.client.post<Run>(urls.rerun(this.client.baseUrl, this.runId));
    this.onRerun(run);
  }
}

/** The build log of a prepare, streamed into a panel. */
export class PreparePanel extends Widget {
  private readonly log = h('pre', { class: 'jp-AmlExec-log' });
  private readonly status = h('div', { class: 'jp-AmlExec-prepareStatus' }, 'Preparing…');

  constructor(client: AmlClient, path: string, target: string) {
    super();
    this.id = `jp-amlexec-prepare-${target}-${Date.now()}`;
    this.addClass('jp-AmlExec-runPanel');
    this.title.label = `Prepare ${target}`;
    this.title.closable = true;
    this.node.append(this.status, this.log);
    void this.stream(client, path, target);
  }

  private async stream(client: AmlClient, path: string, target: string): Promise<void> {
    try {
      const url = urls.prepare(client.baseUrl, path, target);
      for await (const ev of client.events(url, { method: 'POST', body: '{}' })) {
        const data = JSON.parse(ev.data);
        if (ev.event === 'log') {
          this.log.textContent += data.text.endsWith('\n') ? data.text : data.text + '\n';
        } else if (ev.event === 'done') {
          this.status.textContent = data.ok
            ? `Ready${data.built ? ' (built)' : ' (cached)'}${data.image ? `: ${data.image}` : ''}`
            : `Failed: ${data.message}`;
          this.status.dataset.ok = String(data.ok);
        }
      }
    } catch (err) {
      this.status.textContent = `Failed: ${(err as Error).message}`;
    }
  }
}
