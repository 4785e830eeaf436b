/**
 * jupyter-amlexec: the "AML compute" left sidebar, run panels in the main area, and a file
 * browser context-menu item "Submit to compute target…" for .py files. It talks only to the
 * jupyter_amlexec server extension (REST under <base_url>/jupyter-amlexec/api/).
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, MainAreaWidget, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { LabIcon } from '@jupyterlab/ui-components';

import { AmlClient } from './client';
import { SubmitForm, SubmitRequest } from './forms';
import { parentPath } from './logic/format';
import { urls } from './logic/urls';
import { PreparePanel, RunPanel } from './runpanel';
import { ComputeSidebar } from './sidebar';
import { Run, Targets } from './types';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M4 4h16v10H4zM2 18h20v2H2zM7 7v4h2V7zm4 0v4h2V7zm4 0v4h2V7z"/></svg>';

const COMMANDS = {
  submit: 'jupyter-amlexec:submit',
  openRun: 'jupyter-amlexec:open-run'
};

function localPath(path: string): string {
  const i = path.indexOf(':');
  return i >= 0 && !path.slice(0, i).includes('/') ? path.slice(i + 1) : path;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-amlexec:plugin',
  description: 'AML compute sidebar: compute targets and runs of the current project.',
  autoStart: true,
  requires: [IDefaultFileBrowser],
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd, browser: IDefaultFileBrowser) => {
    const client = new AmlClient(app.serviceManager.serverSettings);
    const icon = new LabIcon({ name: 'jupyter-amlexec:compute', svgstr: ICON_SVG });
    const panels = new Map<string, MainAreaWidget<RunPanel>>();

    const openRun = (id: string): void => {
      const open = panels.get(id);
      if (open && !open.isDisposed) {
        app.shell.activateById(open.id);
        return;
      }
      const content = new RunPanel(client, id, run => openRun(run.id));
      const widget = new MainAreaWidget({ content });
      widget.id = content.id;
      widget.title.label = content.title.label;
      content.title.changed.connect(() => (widget.title.label = content.title.label));
      widget.title.closable = true;
      panels.set(id, widget);
      widget.disposed.connect(() => panels.delete(id));
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
      void sidebar.loadRuns(true);
    };

    const sidebar = new ComputeSidebar(client, {
      openRun,
      openPrepare: (path, target) => {
        const widget = new MainAreaWidget({ content: new PreparePanel(client, path, target) });
        widget.title.label = `Prepare ${target}`;
        app.shell.add(widget, 'main');
      }
    });
    sidebar.title.icon = icon;
    app.shell.add(sidebar, 'left', { rank: 850 });
    const follow = () => sidebar.setPath(localPath(browser.model.path));
    browser.model.pathChanged.connect(follow);
    follow();

    app.commands.addCommand(COMMANDS.openRun, {
      label: 'Open AML run',
      execute: args => openRun(String(args.id))
    });

    app.commands.addCommand(COMMANDS.submit, {
      label: 'Submit to compute target…',
      isVisible: () => {
        const item = browser.selectedItems().next();
        return !item.done && item.value.type !== 'directory' && item.value.path.endsWith('.py');
      },
      execute: async () => {
        const item = browser.selectedItems().next();
        if (item.done) {
          return;
        }
        const script = localPath(item.value.path);
        try {
          const doc = await client.json<Targets>(urls.targets(client.baseUrl, parentPath(script)));
          const result = await showDialog<SubmitRequest>({
            title: 'Submit to compute target',
            body: new SubmitForm(script, doc.targets),
            buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit' })]
          });
          if (!result.button.accept || !result.value) {
            return;
          }
          const run = await client.post<Run>(urls.runs(client.baseUrl), result.value);
          openRun(run.id);
        } catch (err) {
          await showErrorMessage('Submit failed', (err as Error).message);
        }
      }
    });
    app.contextMenu.addItem({
      command: COMMANDS.submit,
      selector: '.jp-DirListing-item[data-isdir="false"]',
      rank: 10
    });
  }
};

export default plugin;
