// Video grid geometry: pure functions, no DOM (tested in the browser by tests/web).
//
// `gridShape` picks the column count that makes tiles of a given aspect ratio as large as
// possible in a container; `pageSize` says how many tiles fit on one page before the grid
// pages (with next/prev) instead of shrinking tiles below a usable size.

export const TILE_ASPECT = 16 / 9;
export const GAP = 8;
export const MIN_TILE_WIDTH = 180;
export const MAX_TILES_PER_PAGE = 16;

/**
 * The best grid for `count` tiles in a `width` × `height` box: `{cols, rows, tileWidth,
 * tileHeight}`. Tiles keep `aspect`; the shape maximises their size (1 → 1×1, 2 → 2×1 on a
 * wide screen and 1×2 on a tall one, 3-4 → 2×2, 5-6 → 3×2, 7-9 → 3×3 ...).
 */
export function gridShape(count, width, height, aspect = TILE_ASPECT, gap = GAP) {
  const n = Math.max(1, count);
  let best = { cols: 1, rows: n, tileWidth: 0, tileHeight: 0 };
  for (let cols = 1; cols <= n; cols += 1) {
    const rows = Math.ceil(n / cols);
    const maxW = (width - gap * (cols - 1)) / cols;
    const maxH = (height - gap * (rows - 1)) / rows;
    const tileWidth = Math.max(0, Math.min(maxW, maxH * aspect));
    // Strictly larger wins, so among equal sizes the shape with fewer columns stays.
    if (tileWidth > best.tileWidth + 0.5) {
      best = { cols, rows, tileWidth, tileHeight: tileWidth / aspect };
    }
  }
  best.tileWidth = Math.floor(best.tileWidth);
  best.tileHeight = Math.floor(best.tileHeight);
  return best;
}

/** How many tiles one page shows in a `width` × `height` box (at least 1). */
export function pageSize(width, height, aspect = TILE_ASPECT, gap = GAP) {
  let fits = 1;
  for (let n = 2; n <= MAX_TILES_PER_PAGE; n += 1) {
    if (gridShape(n, width, height, aspect, gap).tileWidth >= MIN_TILE_WIDTH) {
      fits = n;
    }
  }
  return fits;
}

/** Splits `items` into pages of `size`; `{pages, page, items}` for the (clamped) `page`. */
export function paginate(items, size, page) {
  const pages = Math.max(1, Math.ceil(items.length / Math.max(1, size)));
  const clamped = Math.min(Math.max(0, page), pages - 1);
  return {
    pages,
    page: clamped,
    items: items.slice(clamped * size, clamped * size + size),
  };
}

/**
 * Order of the tiles in the grid: the local participant first, then people with a raised
 * hand, then the recent speakers, then everybody else in join order, so the people who talk
 * stay on the first page. `speakers` lists ids, the most recent first.
 */
export function orderTiles(tiles, selfId, speakers = []) {
  const rank = new Map(speakers.map((id, index) => [id, index]));
  const key = (tile) => {
    if (tile.id === selfId) return [0, 0];
    if (tile.hand) return [1, 0];
    if (rank.has(tile.id)) return [2, rank.get(tile.id)];
    return [3, 0];
  };
  return tiles
    .map((tile, index) => ({ tile, index, key: key(tile) }))
    .sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.index - b.index)
    .map((entry) => entry.tile);
}

/** The size a rendered video needs from the SFU: CSS size × devicePixelRatio, rounded. */
export function layerSize(cssWidth, cssHeight, dpr = 1, visible = true) {
  if (!visible || cssWidth <= 0 || cssHeight <= 0) {
    return { width: 0, height: 0 };
  }
  return { width: Math.round(cssWidth * dpr), height: Math.round(cssHeight * dpr) };
}
