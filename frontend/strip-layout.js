// Where each piece of the step strip goes: one pure function from counts and
// the room available to grid positions, so every cell of a long schedule is
// on screen at once (cells shrink, then wrap into more rows) and the view,
// the per-cell noise bars and the tests all read the same numbers.
//
// Left to right: the skipped steps (one block, or their cells when expanded),
// the init frame ("what SD sees"), the taken steps, the output. The block, the
// init and the output span every row; with two rows or more they are two
// columns wide, so they stay the largest pictures in the strip. Grid lines are
// 1-based, as CSS grid-area wants them.

export const LAYOUT_DEFAULTS = Object.freeze({
  gap: 4, // px between cells, both ways
  minCell: 12, // below this a preview is no longer a picture: scroll instead
  maxCell: 88, // above this a few-step strip would push the viewer off the page
  comfortCell: 44, // wrap into another row only while cells are smaller than this
  maxRows: 12,
});

/** The height of the noise bar above each cell, for a cell size. */
export function barHeight(cell) {
  return Math.min(14, Math.max(6, Math.round(cell / 4)));
}

/**
 * counts: {skipped, taken, init: whether the init cell is shown, expanded: whether
 *   the skipped steps are shown as cells}
 * room: {width, maxHeight} in px (the strip's inner width, the most height it may take)
 * Returns {cell, bar, rows, columns, width, height, overflow, group, toggle, skipped,
 *   init, steps, output}: sizes in px, overflow true when even minCell cells need
 *   more than maxHeight (the strip then scrolls). group is the skipped block's area
 *   (null without skipped steps), toggle the expanded block's button, skipped and
 *   steps one {row, col} per cell, each area {row, col, rowSpan, colSpan}.
 */
export function stripLayout(counts, room, options = {}) {
  const o = { ...LAYOUT_DEFAULTS, ...options };
  const c = {
    skipped: whole(counts?.skipped),
    taken: whole(counts?.taken),
    init: Boolean(counts?.init),
    expanded: Boolean(counts?.expanded),
  };
  const width = Math.max(0, Number(room?.width) || 0);
  const maxHeight = Math.max(0, Number(room?.maxHeight) || 0);
  const rowChoices = Math.max(1, Math.min(o.maxRows, Math.max(c.taken, c.expanded ? c.skipped : 0, 1)));

  const fitted = [];
  for (let rows = 1; rows <= rowChoices; rows++) {
    const columns = columnCount(c, rows);
    const cell = largestCell(columns, rows, width, maxHeight, o);
    if (cell != null) fitted.push({ rows, cell });
  }
  // The fewest rows whose cells are comfortable; else the rows giving the largest cells.
  let pick = fitted.find((f) => f.cell >= o.comfortCell)
    ?? fitted.reduce((best, f) => (!best || f.cell > best.cell ? f : best), null);
  let overflow = false;
  if (!pick) {
    // Not even minCell fits the height: keep the width, let the strip scroll down.
    overflow = true;
    const most = Math.max(c.taken, c.skipped, 1);
    for (let rows = 1; rows <= most && !pick; rows++) {
      const cell = largestCell(columnCount(c, rows), rows, width, Infinity, o);
      if (cell != null) pick = { rows, cell };
    }
    pick ??= { rows: rowChoices, cell: o.minCell };
  }
  return place(c, pick.rows, pick.cell, o.gap, overflow);
}

/** Columns a layout of `rows` rows needs. */
function columnCount(c, rows) {
  const span = tileSpan(rows);
  let columns = span + Math.ceil(c.taken / rows); // the steps and the output
  if (c.init) columns += span;
  if (c.skipped > 0) columns += c.expanded ? 1 + Math.ceil(c.skipped / rows) : span;
  return columns;
}

function tileSpan(rows) {
  return rows >= 2 ? 2 : 1;
}

/** The largest whole-pixel cell from maxCell down to minCell that fits, or null. */
function largestCell(columns, rows, width, maxHeight, o) {
  for (let cell = o.maxCell; cell >= o.minCell; cell--) {
    const w = columns * cell + (columns - 1) * o.gap;
    const h = rows * (cell + barHeight(cell)) + (rows - 1) * o.gap;
    if (w <= width && h <= maxHeight) return cell;
  }
  return null;
}

function place(c, rows, cell, gap, overflow) {
  const span = tileSpan(rows);
  const tile = (col) => ({ row: 1, col, rowSpan: rows, colSpan: span });
  let col = 1;
  let group = null;
  let toggle = null;
  let skipped = [];
  if (c.skipped > 0) {
    if (c.expanded) {
      toggle = { row: 1, col, rowSpan: rows, colSpan: 1 };
      const cells = block(c.skipped, rows, col + 1);
      group = { row: 1, col, rowSpan: rows, colSpan: 1 + cells.columns };
      skipped = cells.places;
    } else {
      group = tile(col);
    }
    col += group.colSpan;
  }
  let init = null;
  if (c.init) {
    init = tile(col);
    col += span;
  }
  const steps = block(c.taken, rows, col);
  col += steps.columns;
  const output = tile(col);
  const columns = col + span - 1;
  const bar = barHeight(cell);
  return {
    cell, bar, rows, columns, overflow,
    width: columns * cell + (columns - 1) * gap,
    height: rows * (cell + bar) + (rows - 1) * gap,
    group, toggle, skipped, init, steps: steps.places, output,
  };
}

/** n cells in reading order (left to right, then the next row) in a block starting at column `col`. */
function block(n, rows, col) {
  const columns = Math.ceil(n / rows);
  const places = [];
  for (let i = 0; i < n; i++) places.push({ row: Math.floor(i / columns) + 1, col: col + (i % columns) });
  return { columns, places };
}

function whole(value) {
  return Number.isInteger(value) && value > 0 ? value : 0;
}
