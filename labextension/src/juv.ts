/**
 * Keeping a notebook readable by juv: the environment it carries written the
 * way juv keeps one, as a PEP 723 `# /// script` block in a first code cell
 * (hidden: it is only comments) and a `uv lock --script` lock in
 * `metadata["uv.lock"]`. The server makes both (`POST juv`); the block pins
 * the lock's versions, so juv and `uv run` get the same ones.
 *
 * A notebook that has such a cell gets it refreshed at every switch (kept in
 * step); one that has none is offered it once per session.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { callApi } from './restore';

/** Where juv keeps a notebook's lock. */
export const JUV_LOCK_KEY = 'uv.lock';

/** A PEP 723 `script` block (PEP 723's own syntax). */
const BLOCK = /^# \/\/\/ script$\n(?:^#(?:| .*)$\n)+?^# \/\/\/$/m;

/** The index of the first code cell holding a script block, or -1. */
export function juvCellIndex(panel: NotebookPanel): number {
  const cells = panel.content.model?.cells;
  if (!cells) {
    return -1;
  }
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type === 'code' && BLOCK.test(cell.sharedModel.getSource())) {
      return i;
    }
  }
  return -1;
}

/**
 * Write (or refresh) the notebook's juv cell and uv.lock from `record`.
 */
export async function writeJuv(
  panel: NotebookPanel,
  settings: ServerConnection.ISettings,
  record: ReadonlyPartialJSONObject
): Promise<void> {
  const parts = await callApi<{ cell: string; uv_lock: string }>(settings, 'POST', 'juv', {
    metadata: record
  });
  const model = panel.content.model;
  if (!model || panel.isDisposed) {
    return;
  }
  const index = juvCellIndex(panel);
  if (index >= 0) {
    const shared = model.cells.get(index).sharedModel;
    shared.setSource(shared.getSource().replace(BLOCK, parts.cell));
  } else {
    model.sharedModel.insertCell(0, {
      cell_type: 'code',
      source: parts.cell,
      metadata: { jupyter: { source_hidden: true } }
    });
  }
  model.setMetadata(JUV_LOCK_KEY, parts.uv_lock);
}
