/**
 * The restore notice: a notebook that carries its environment
 * (`metadata.jupyter_envs`, docs/notebook-metadata.md) opened where that
 * environment is missing.
 *
 * A notebook from someone else is untrusted input, so nothing is built when it
 * opens. The server checks the record and says what rebuilding it would install
 * (`POST restore/preview`); this notice shows that above the notebook — which
 * environment and version, how it was locked, the packages, package sources
 * and local paths, and what differs from this machine — and builds only when
 * the user clicks (`POST restore`), then switches the notebook to the new
 * kernel. A record the server refuses (malformed, tampered, a future format) is
 * shown as an error, with nothing to build.
 */

import { Notification } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ReadonlyPartialJSONValue } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

/** What `POST restore/preview` answers. */
export interface IRestorePlan {
  env: string;
  version: number;
  name: string;
  backend: string;
  python: string | null;
  platform: string | null;
  from_lock: boolean;
  has_lock: boolean;
  lock_usable: boolean;
  installs: string[];
  channels: string[];
  pip_options: string[];
  local_paths: string[];
  base_image: string | null;
  warnings: string[];
  existing: { name: string; version: number; kernel_name: string | null } | null;
}

/** A build as `GET builds/<id>` shows it (the fields used here). */
interface IBuild {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  kernel_name: string | null;
  version: number | null;
  error: string | null;
  from_lock: boolean;
  progress: { phase: string; fraction: number; message: string } | null;
}

/** An error answer of the jupyter-envs API, with its message. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/** Call `/jupyter-envs/api/<path>`; the parsed JSON, or an ApiError. */
export async function callApi<T>(
  settings: ServerConnection.ISettings,
  method: string,
  path: string,
  body?: unknown
): Promise<T> {
  const url = `${settings.baseUrl.replace(/\/?$/, '/')}jupyter-envs/api/${path}`;
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
  }
  const response = await ServerConnection.makeRequest(url, init, settings);
  let data: unknown = null;
  try {
    data = await response.json();
  } catch {
    // an empty or non-JSON body
  }
  if (!response.ok) {
    const message =
      data && typeof data === 'object' && 'message' in data
        ? String((data as { message: unknown }).message)
        : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data as T;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) {
    node.textContent = text;
  }
  if (className) {
    node.className = className;
  }
  return node;
}

/** A list under a heading, collapsed when long. */
function section(title: string, items: string[], open: boolean): HTMLElement {
  const details = element('details', undefined, 'jp-envs-restore-section');
  details.open = open;
  details.appendChild(element('summary', `${title} (${items.length})`));
  const list = element('ul');
  for (const item of items) {
    list.appendChild(element('li', item));
  }
  details.appendChild(list);
  return details;
}

const POLL_MS = 500;

/**
 * The notice shown in a notebook panel's content header.
 */
export class RestoreNotice extends Widget {
  constructor(
    private readonly _panel: NotebookPanel,
    private readonly _settings: ServerConnection.ISettings,
    private readonly _record: ReadonlyPartialJSONValue,
    private readonly _refreshSpecs: () => Promise<void>
  ) {
    super();
    this.addClass('jp-envs-restore');
    const style = this.node.style;
    style.padding = '8px 12px';
    style.borderBottom = '1px solid var(--jp-border-color2)';
    style.background = 'var(--jp-layout-color2)';
    style.color = 'var(--jp-ui-font-color1)';
    style.fontSize = 'var(--jp-ui-font-size1)';
    style.overflow = 'auto';
    style.boxSizing = 'border-box';
  }

  /** Ask the server about the record; show what it says (or nothing). */
  async check(): Promise<void> {
    let plan: IRestorePlan;
    try {
      plan = await callApi<IRestorePlan>(this._settings, 'POST', 'restore/preview', {
        metadata: this._record
      });
    } catch (error) {
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
        this._showRefused(error.message);
      } else {
        console.warn(`jupyter-envs: cannot check this notebook's environment: ${error}`);
        this.dispose();
      }
      return;
    }
    // The kernel the notebook runs, or the one it will start (its kernelspec).
    const declared = this._panel.content.model?.getMetadata('kernelspec') as
      | { name?: string }
      | undefined;
    const current = this._panel.sessionContext.session?.kernel?.name ?? declared?.name;
    if (plan.existing && plan.existing.kernel_name === current) {
      this.dispose(); // already on it
      return;
    }
    this._showPlan(plan);
  }

  /**
   * Size the notice to its content. The content header is a Lumino BoxPanel,
   * which gives a child the height of its CSS min-height: set it to what the
   * content needs (capped), and make the header lay out again.
   */
  private _fit(): void {
    requestAnimationFrame(() => {
      if (this.isDisposed) {
        return;
      }
      const cap = Math.round(window.innerHeight * 0.4);
      this.node.style.minHeight = '0';
      this.node.style.height = 'auto';
      const needed = Math.min(this.node.scrollHeight, cap);
      this.node.style.minHeight = `${needed}px`;
      this.node.style.height = '';
      this.parent?.fit();
    });
  }

  private _reset(kind: 'info' | 'error'): void {
    this._observer ??= new MutationObserver(() => this._fit());
    // Content added or removed, a list opened or closed (not the style this sets).
    this._observer.observe(this.node, {
      childList: true,
      subtree: true,
      attributeFilter: ['open']
    });
    this.node.textContent = '';
    this.node.dataset.kind = kind;
    this.node.style.borderLeft =
      kind === 'error'
        ? '4px solid var(--jp-error-color1)'
        : '4px solid var(--jp-warn-color1)';
  }

  private _buttons(...buttons: [string, string, () => void][]): HTMLElement {
    const row = element('div', undefined, 'jp-envs-restore-actions');
    row.style.marginTop = '6px';
    for (const [label, className, onClick] of buttons) {
      const button = element('button', label, `jp-Button jp-mod-styled ${className}`);
      button.style.marginRight = '6px';
      button.addEventListener('click', onClick);
      row.appendChild(button);
    }
    return row;
  }

  private _dismissButton(): [string, string, () => void] {
    return ['Dismiss', 'jp-mod-reject jp-envs-restore-dismiss', () => this.dispose()];
  }

  private _showRefused(message: string): void {
    this._reset('error');
    this.node.appendChild(
      element(
        'div',
        "This notebook's environment record cannot be used; nothing will be built from it.",
        'jp-envs-restore-title'
      )
    );
    this.node.appendChild(element('div', message, 'jp-envs-restore-error'));
    this.node.appendChild(this._buttons(this._dismissButton()));
  }

  private _showPlan(plan: IRestorePlan): void {
    this._reset('info');
    const made = [`${plan.backend} builder`];
    if (plan.python) {
      made.push(`Python ${plan.python}`);
    }
    if (plan.platform) {
      made.push(`built on ${plan.platform}`);
    }
    const title = element(
      'div',
      `This notebook was made in environment ${plan.env} v${plan.version} ` +
        `(${made.join(', ')}).`,
      'jp-envs-restore-title'
    );
    title.style.fontWeight = 'bold';
    this.node.appendChild(title);
    if (plan.existing) {
      this.node.appendChild(
        element(
          'div',
          `This server has it: ${plan.existing.name} v${plan.existing.version} ` +
            `(kernel ${plan.existing.kernel_name}).`
        )
      );
      this.node.appendChild(
        this._buttons(
          [
            'Switch to it',
            'jp-mod-accept jp-envs-restore-switch',
            () => void this._switch(plan.existing!.kernel_name ?? '', plan)
          ],
          this._dismissButton()
        )
      );
      return;
    }
    const fromLock = plan.has_lock && plan.lock_usable;
    this.node.appendChild(
      element(
        'div',
        `It is not on this server. ` +
          (fromLock
            ? `Rebuilding it installs its ${plan.installs.length} locked ` +
              `version${plan.installs.length === 1 ? '' : 's'} ` +
              '(the same as on the machine that made it):'
            : plan.has_lock
              ? 'Its builder cannot install a lock yet: it would be rebuilt from its ' +
                "spec, and versions may differ from the first machine's:"
              : 'It carries no lock: it would be rebuilt from its spec:')
      )
    );
    this.node.appendChild(section('Packages', plan.installs, plan.installs.length <= 8));
    if (plan.channels.length) {
      this.node.appendChild(section('Conda channels', plan.channels, true));
    }
    if (plan.pip_options.length) {
      this.node.appendChild(section('Installer options', plan.pip_options, true));
    }
    if (plan.base_image) {
      this.node.appendChild(element('div', `Base image: ${plan.base_image}`));
    }
    if (plan.warnings.length) {
      const warnings = section('Check first', plan.warnings, true);
      warnings.classList.add('jp-envs-restore-warnings');
      warnings.style.color = 'var(--jp-warn-color0)';
      this.node.appendChild(warnings);
    }
    this._progress = element('div', undefined, 'jp-envs-restore-progress');
    this.node.appendChild(this._progress);
    this._actions = this._buttons(
      [
        fromLock ? 'Build it and switch' : 'Build from its spec and switch',
        'jp-mod-accept jp-envs-restore-build',
        () => void this._build(plan, !fromLock)
      ],
      this._dismissButton()
    );
    this.node.appendChild(this._actions);
  }

  private _showProgress(text: string, fraction: number | null): void {
    const box = this._progress;
    if (!box) {
      return;
    }
    box.textContent = '';
    if (fraction !== null) {
      const bar = element('progress');
      bar.max = 1;
      bar.value = fraction;
      bar.style.marginRight = '8px';
      box.appendChild(bar);
    }
    box.appendChild(element('span', text));
  }

  private async _build(plan: IRestorePlan, reResolve: boolean): Promise<void> {
    this._actions?.remove();
    let build: IBuild;
    try {
      build = await callApi<IBuild>(this._settings, 'POST', 'restore', {
        metadata: this._record,
        re_resolve: reResolve
      });
      this._showProgress('queued', 0);
      const cancel = this._buttons([
        'Cancel',
        'jp-mod-warn jp-envs-restore-cancel',
        () => void callApi(this._settings, 'POST', `builds/${build.id}/cancel`, {})
      ]);
      this.node.appendChild(cancel);
      while (build.status === 'queued' || build.status === 'running') {
        await new Promise(resolve => setTimeout(resolve, POLL_MS));
        if (this.isDisposed) {
          return; // the notebook was closed; the build goes on in the server
        }
        build = await callApi<IBuild>(this._settings, 'GET', `builds/${build.id}`);
        const p = build.progress;
        this._showProgress(p ? `${p.phase}: ${p.message}` : build.status, p ? p.fraction : 0);
      }
      cancel.remove();
    } catch (error) {
      this._failed(plan, error instanceof Error ? error.message : String(error), !reResolve);
      return;
    }
    if (build.status !== 'succeeded' || !build.kernel_name) {
      this._failed(plan, build.error ?? `the build ${build.status}`, build.from_lock);
      return;
    }
    await this._switch(build.kernel_name, plan);
  }

  private _failed(plan: IRestorePlan, message: string, offerReResolve: boolean): void {
    this._showProgress('', null);
    const error = element('pre', message, 'jp-envs-restore-error');
    error.style.whiteSpace = 'pre-wrap';
    error.style.color = 'var(--jp-error-color1)';
    this.node.appendChild(error);
    const buttons: [string, string, () => void][] = [];
    if (offerReResolve) {
      buttons.push([
        'Re-resolve from its spec (versions may differ)',
        'jp-mod-accept jp-envs-restore-reresolve',
        () => {
          error.remove();
          row.remove();
          void this._build(plan, true);
        }
      ]);
    }
    buttons.push(this._dismissButton());
    const row = this._buttons(...buttons);
    this.node.appendChild(row);
  }

  private async _switch(kernelName: string, plan: IRestorePlan): Promise<void> {
    try {
      // The kernelspec was written after JupyterLab last listed them.
      await this._refreshSpecs();
      await this._panel.sessionContext.changeKernel({ name: kernelName });
    } catch (error) {
      this._failed(plan, `Could not switch to ${kernelName}: ${error}`, false);
      return;
    }
    Notification.success(
      `${this._panel.title.label}: environment ${plan.env} rebuilt; switched to kernel ${kernelName}`,
      { autoClose: 5000 }
    );
    this.dispose();
  }

  dispose(): void {
    this._observer?.disconnect();
    const parent = this.parent;
    super.dispose();
    parent?.fit();
  }

  private _observer: MutationObserver | null = null;
  private _progress: HTMLElement | null = null;
  private _actions: HTMLElement | null = null;
}
