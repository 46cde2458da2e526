/**
 * jupyter-envs frontend.
 *
 * The Python side of jupyter-envs runs inside a notebook's kernel. Once it
 * has built an environment and installed a kernelspec for it, it opens a comm
 * on the target `jupyter_envs.switch` with
 *
 *     {kernel_name, display_name, env, version, spec_hash[, new_kernel_id]}
 *
 * (`new_kernel_id`: a kernel of `kernel_name` the server already started for
 * this notebook's session and checked to be answering; the switch then only
 * moves the session onto it.)
 *
 * In the tab whose client sent the cell that opened the comm (and no other),
 * this plugin answers `{status: "switching"}` at once (so the kernel knows a
 * labextension is handling it and does not fall back to the server), waits for
 * the kernel to be idle, switches that notebook to the new kernel, records
 * `metadata.jupyter_envs` in the notebook (the `carried` record the kernel
 * sends: spec, lock and hash, docs/notebook-metadata.md; else
 * `{env, version, spec_hash}`), and
 * tells the user with a notification. Failures answer
 * `{status: "error", message}`.
 *
 * A notebook opened with such a record whose environment this server lacks
 * (another machine, a fresh clone) gets the restore notice of `./restore`: what
 * rebuilding it would install, and a button that builds it and switches.
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage, ServerConnection } from '@jupyterlab/services';
import {
  JSONObject,
  ReadonlyPartialJSONObject,
  ReadonlyPartialJSONValue
} from '@lumino/coreutils';
import { juvCellIndex, writeJuv } from './juv';
import { RestoreNotice } from './restore';

/** Comm target the kernel side opens to ask for a kernel switch. */
export const COMM_TARGET = 'jupyter_envs.switch';

/** Notebook metadata key written after a successful switch. */
export const METADATA_KEY = 'jupyter_envs';

/** The data of the comm_open message. */
export interface ISwitchRequest {
  kernel_name: string;
  display_name: string;
  env: string;
  version: number;
  spec_hash: string;
  new_kernel_id?: string;
  /** What the notebook records of the environment (format 1), when sent. */
  carried?: ReadonlyPartialJSONObject;
}

/** The replies sent back on the comm. */
export type SwitchReply =
  | { status: 'switching' }
  | { status: 'switched' }
  | { status: 'error'; message: string };

/**
 * Check the data of a comm_open message.
 *
 * Returns the request, or a message telling what is wrong with it.
 */
export function parseSwitchRequest(
  data: ReadonlyPartialJSONValue | undefined
): ISwitchRequest | string {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return 'the comm data must be an object';
  }
  const record = data as { [key: string]: ReadonlyPartialJSONValue | undefined };
  for (const field of ['kernel_name', 'env', 'spec_hash'] as const) {
    const value = record[field];
    if (typeof value !== 'string' || !value) {
      return `the comm data needs a non-empty string "${field}"`;
    }
  }
  const version = record['version'];
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    return 'the comm data needs a version number >= 1';
  }
  const newKernelId = record['new_kernel_id'];
  if (
    newKernelId !== undefined &&
    newKernelId !== null &&
    (typeof newKernelId !== 'string' || !newKernelId)
  ) {
    return 'the comm data\'s "new_kernel_id", when given, must be a non-empty string';
  }
  const displayName = record['display_name'];
  const values: ISwitchRequest = {
    kernel_name: record['kernel_name'] as string,
    display_name:
      typeof displayName === 'string' && displayName
        ? displayName
        : (record['kernel_name'] as string),
    env: record['env'] as string,
    version,
    spec_hash: record['spec_hash'] as string
  };
  if (typeof newKernelId === 'string') {
    values.new_kernel_id = newKernelId;
  }
  const carried = record['carried'];
  if (carried !== undefined && carried !== null) {
    if (typeof carried !== 'object' || Array.isArray(carried)) {
      return 'the comm data\'s "carried", when given, must be an object';
    }
    values.carried = carried as ReadonlyPartialJSONObject;
  }
  return values;
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/**
 * Send a reply on the comm, leaving it open.
 */
function send(comm: Kernel.IComm, content: SwitchReply): void {
  if (!comm.isDisposed) {
    comm.send(content as unknown as JSONObject);
  }
}

/**
 * Send a reply on the comm and close it.
 *
 * After a successful switch the server has already shut down the kernel that
 * opened the comm and JupyterLab has disposed its connection, so the reply
 * cannot reach it any more: that failure is expected and only logged.
 */
function reply(comm: Kernel.IComm, content: SwitchReply): void {
  try {
    if (comm.isDisposed) {
      throw new Error('the comm is closed');
    }
    comm.send(content as unknown as JSONObject);
    comm.close();
  } catch (error) {
    console.debug(
      `jupyter-envs: could not send ${JSON.stringify(content)} on the comm ` +
        `(the kernel that opened it is gone): ${errorMessage(error)}`
    );
  }
}

/**
 * Resolve once the kernel is idle; reject if it dies or goes away first.
 */
function waitUntilIdle(kernel: Kernel.IKernelConnection): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const check = (): boolean => {
      if (kernel.isDisposed) {
        reject(new Error('the kernel connection was closed'));
        return true;
      }
      switch (kernel.status) {
        case 'idle':
          resolve();
          return true;
        case 'dead':
        case 'restarting':
        case 'autorestarting':
          reject(new Error(`the kernel is ${kernel.status}`));
          return true;
        default:
          return false;
      }
    };
    if (check()) {
      return;
    }
    const onChange = (): void => {
      if (check()) {
        kernel.statusChanged.disconnect(onChange);
        kernel.disposed.disconnect(onChange);
      }
    };
    kernel.statusChanged.connect(onChange);
    kernel.disposed.connect(onChange);
  });
}

/**
 * Ask the jupyter-envs server extension to move the session that owns
 * `fromKernel` onto the prepared kernel `newKernel` (POST switch).
 *
 * Unlike PATCHing the session (which waits until the old kernel has shut
 * down), the server answers at once and shuts the old kernel down after.
 */
async function adoptPreparedKernel(
  settings: ServerConnection.ISettings,
  fromKernel: string,
  kernelName: string,
  newKernel: string
): Promise<void> {
  const url = `${settings.baseUrl.replace(/\/?$/, '/')}jupyter-envs/api/switch`;
  const response = await ServerConnection.makeRequest(
    url,
    {
      method: 'POST',
      body: JSON.stringify({
        kernel_id: fromKernel,
        kernel_name: kernelName,
        new_kernel_id: newKernel
      })
    },
    settings
  );
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = (await response.json()) as { message?: string };
      message = body.message ?? message;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(message);
  }
}

/**
 * Resolve once the panel's kernel is `kernelId` (now or after a kernel
 * change); reject after `timeout` ms.
 */
function waitForKernel(
  panel: NotebookPanel,
  kernelId: string,
  timeout: number
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const context = panel.sessionContext;
    const arrived = (): boolean => context.session?.kernel?.id === kernelId;
    if (arrived()) {
      resolve();
      return;
    }
    const onChange = (): void => {
      if (arrived()) {
        clearTimeout(timer);
        context.kernelChanged.disconnect(onChange);
        resolve();
      }
    };
    const timer = setTimeout(() => {
      context.kernelChanged.disconnect(onChange);
      reject(new Error('the notebook did not pick up the new kernel'));
    }, timeout);
    context.kernelChanged.connect(onChange);
  });
}

/**
 * Watches one notebook panel: keeps the comm target registered on whatever
 * kernel the panel has, and handles the switch requests of that kernel.
 */
class PanelWatcher {
  constructor(
    private readonly _app: JupyterFrontEnd,
    private readonly _panel: NotebookPanel
  ) {
    const sessionContext = _panel.sessionContext;
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    this._register(sessionContext.session?.kernel ?? null);
    _panel.disposed.connect(this._dispose, this);
    void this._offerRestore();
  }

  /**
   * Once the notebook and its kernel are loaded: when it carries an
   * environment record, let the restore notice check it with the server.
   */
  private async _offerRestore(): Promise<void> {
    try {
      // Not sessionContext.ready: that can wait on the kernel picker, and this
      // notice is what helps the user choose.
      await this._panel.context.ready;
    } catch {
      return; // closed before it loaded
    }
    const record = this._panel.content.model?.getMetadata(METADATA_KEY);
    if (record === undefined || record === null || this._panel.isDisposed) {
      return;
    }
    const services = this._app.serviceManager;
    const notice = new RestoreNotice(
      this._panel,
      services.serverSettings,
      record as ReadonlyPartialJSONValue,
      () => services.kernelspecs.refreshSpecs()
    );
    this._panel.contentHeader.addWidget(notice);
    await notice.check();
  }

  private _onKernelChanged(
    _sender: unknown,
    change: {
      oldValue: Kernel.IKernelConnection | null;
      newValue: Kernel.IKernelConnection | null;
    }
  ): void {
    this._unregister(change.oldValue);
    this._register(change.newValue);
  }

  private _register(kernel: Kernel.IKernelConnection | null): void {
    if (!kernel || kernel.isDisposed || this._kernel === kernel) {
      return;
    }
    this._unregister(this._kernel);
    kernel.registerCommTarget(COMM_TARGET, this._onCommOpen);
    this._kernel = kernel;
  }

  private _unregister(kernel: Kernel.IKernelConnection | null): void {
    if (!kernel || kernel !== this._kernel) {
      return;
    }
    this._kernel = null;
    if (!kernel.isDisposed) {
      kernel.removeCommTarget(COMM_TARGET, this._onCommOpen);
    }
  }

  private _dispose(): void {
    this._panel.sessionContext.kernelChanged.disconnect(
      this._onKernelChanged,
      this
    );
    this._unregister(this._kernel);
  }

  /**
   * Called by the panel's kernel connection when its kernel opens the comm.
   *
   * JupyterLab handles a kernel's messages one at a time and waits for this
   * callback before it handles the next one, so the switch itself runs
   * detached: it waits for the messages that follow (the rest of the cell's
   * output, the kernel going idle).
   */
  private readonly _onCommOpen = (
    comm: Kernel.IComm,
    msg: KernelMessage.ICommOpenMsg
  ): void => {
    // Every tab connected to this kernel sees the comm_open; only the one whose
    // client sent the execute request that opened it acts.
    const parent = msg.parent_header as Partial<KernelMessage.IHeader>;
    if (this._kernel && parent.session && parent.session !== this._kernel.clientId) {
      return;
    }
    const request = parseSwitchRequest(msg.content.data);
    if (typeof request === 'string') {
      this._fail(comm, `Invalid environment switch request: ${request}`);
      return;
    }
    const kernel = this._kernel;
    if (!kernel) {
      this._fail(comm, 'The notebook has no kernel any more');
      return;
    }
    if (this._switching) {
      this._fail(
        comm,
        'A kernel switch is already under way for this notebook'
      );
      return;
    }
    this._switching = true;
    // Tell the kernel at once that this extension handles the switch (it falls
    // back to the server only when the comm closes without this answer).
    send(comm, { status: 'switching' });
    void this._switch(comm, kernel, request).finally(() => {
      this._switching = false;
    });
  };

  private async _switch(
    comm: Kernel.IComm,
    kernel: Kernel.IKernelConnection,
    request: ISwitchRequest
  ): Promise<void> {
    const { kernel_name, env, version, spec_hash, carried } = request;
    const label = `${env} v${version}`;
    const kernelspecs = this._app.serviceManager.kernelspecs;
    try {
      // The kernelspec was installed after JupyterLab last listed them: list
      // them again while the cell that asked for the switch finishes (switching
      // shuts its kernel down, which would cut the cell off).
      const specsRefreshed = kernelspecs.refreshSpecs();
      await waitUntilIdle(kernel);
      await specsRefreshed;
      if (this._panel.isDisposed) {
        throw new Error('the notebook was closed');
      }
      if (this._panel.sessionContext.session?.kernel !== kernel) {
        throw new Error('the notebook changed its kernel meanwhile');
      }
      const known = kernelspecs.specs?.kernelspecs ?? {};
      if (!(kernel_name in known)) {
        throw new Error(`no kernel named "${kernel_name}" is installed`);
      }
      await this._changeKernel(kernel, request);
    } catch (error) {
      this._fail(
        comm,
        `Could not switch to environment ${label}: ${errorMessage(error)}`
      );
      return;
    }

    this._panel.content.model?.setMetadata(
      METADATA_KEY,
      carried ?? { env, version, spec_hash }
    );
    reply(comm, { status: 'switched' });
    Notification.success(
      `${this._panel.title.label}: switched to environment ${label} (kernel ${kernel_name})`,
      { autoClose: 5000 }
    );
    // juv and uv know pip packages only: a conda environment has no PEP 723 form.
    if (carried && carried.backend !== 'conda') {
      void this._keepJuv(carried, label);
    }
  }

  /**
   * A notebook with a juv cell gets it refreshed (kept in step with the
   * environment just recorded); one without is offered it, once a session.
   */
  private async _keepJuv(
    record: ReadonlyPartialJSONObject,
    label: string
  ): Promise<void> {
    const settings = this._app.serviceManager.serverSettings;
    const write = async (): Promise<void> => {
      try {
        await writeJuv(this._panel, settings, record);
        Notification.success(
          `${this._panel.title.label}: its PEP 723 cell and uv.lock (for juv and uv) ` +
            `now pin environment ${label}`,
          { autoClose: 5000 }
        );
      } catch (error) {
        Notification.warning(
          `${this._panel.title.label}: could not write its cell for juv: ${errorMessage(error)}`,
          { autoClose: false }
        );
      }
    };
    if (juvCellIndex(this._panel) >= 0) {
      await write();
      return;
    }
    if (this._juvOffered) {
      return;
    }
    this._juvOffered = true;
    Notification.info(
      `${this._panel.title.label}: juv and uv can open this notebook with the same ` +
        'versions too, if it keeps a PEP 723 cell and a uv.lock.',
      {
        autoClose: 20000,
        actions: [
          {
            label: 'Write them',
            caption: 'Add a hidden first cell with the PEP 723 block, and metadata uv.lock',
            callback: () => void write()
          }
        ]
      }
    );
  }

  /**
   * Move the notebook onto the new kernel.
   *
   * A kernel the server started ahead (`new_kernel_id`) is already answering:
   * the server moves the session onto it, and the session list is refreshed
   * at once so this tab follows. If that does not work out, the session is
   * PATCHed like JupyterLab's own kernel picker does (by id, or by name).
   */
  private async _changeKernel(
    kernel: Kernel.IKernelConnection,
    request: ISwitchRequest
  ): Promise<void> {
    const context = this._panel.sessionContext;
    const newKernel = request.new_kernel_id;
    if (newKernel) {
      const services = this._app.serviceManager;
      let adopted = false;
      try {
        await adoptPreparedKernel(
          services.serverSettings,
          kernel.id,
          request.kernel_name,
          newKernel
        );
        adopted = true;
        await services.sessions.refreshRunning();
        await waitForKernel(this._panel, newKernel, 10000);
        return;
      } catch (error) {
        console.warn(
          `jupyter-envs: moving the session onto kernel ${newKernel} did not ` +
            `work out (${errorMessage(error)}); switching through the session`
        );
      }
      if (adopted) {
        // The server moved the session: make this tab use its kernel now.
        await context.changeKernel({ id: newKernel, name: request.kernel_name });
        return;
      }
    }
    await context.changeKernel({ name: request.kernel_name });
  }

  private _fail(comm: Kernel.IComm, message: string): void {
    console.error(`jupyter-envs: ${message}`);
    reply(comm, { status: 'error', message });
    Notification.error(message, { autoClose: false });
  }

  private _kernel: Kernel.IKernelConnection | null = null;
  private _switching = false;
  private _juvOffered = false;
}

/**
 * The jupyter-envs plugin.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-envs:plugin',
  description:
    'Switches a notebook to the kernel of an environment built by jupyter-envs.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker): void => {
    const watched = new WeakSet<NotebookPanel>();
    const watch = (panel: NotebookPanel): void => {
      if (watched.has(panel) || panel.isDisposed) {
        return;
      }
      watched.add(panel);
      new PanelWatcher(app, panel);
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_sender, panel) => watch(panel));
  }
};

export default plugin;
