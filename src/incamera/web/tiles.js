// Video tiles and the grid that arranges them (grid view, or a large stage with a strip).

import { avatar, h, icon } from "./dom.js";
import { t } from "./i18n.js";
import { gridShape, pageSize, paginate, GAP, TILE_ASPECT } from "./layout.js";

/** One participant's camera or screen, with name, mic state, hand, quality, reconnecting. */
export class Tile {
  constructor({ participantId, source, local = false }) {
    this.participantId = participantId;
    this.source = source;
    this.local = local;
    this.key = `${participantId}:${source}`;
    this.stream = null;
    this.videoOff = false;
    this.video = h("video", { autoplay: true, playsInline: true, muted: true });
    this.video.muted = true;
    if (local && source === "camera") this.video.classList.add("mirror");
    this.avatarBox = h("div", { class: "avatar" });
    this.nameEl = h("span", { class: "name" });
    this.qualityEl = h("span", { class: "quality", role: "img" }, h("i"), h("i"), h("i"));
    this.statusEl = h("div", { class: "status" });
    this.el = h(
      "div",
      {
        class: "tile",
        role: "listitem",
        tabindex: "0",
        dataset: { participant: participantId, source, local: String(local) },
      },
      this.video,
      this.avatarBox,
      h("span", { class: "hand-badge", "aria-hidden": "true" }, icon("hand")),
      this.statusEl,
      h(
        "div",
        { class: "tile-bar" },
        this.qualityEl,
        this.nameEl,
        h("span", { class: "mic-off" }, icon("mic-off")),
      ),
    );
    const refresh = () => this.refreshVideo();
    this.video.addEventListener("loadeddata", refresh);
    this.video.addEventListener("resize", refresh);
    this.lastName = null;
  }

  /** Shows `track` (or nothing). Reuses the element so the picture does not flicker. */
  setTrack(track) {
    const current = this.stream?.getVideoTracks()[0] || null;
    if (current === track) return;
    if (this.trackListener && current) {
      current.removeEventListener("mute", this.trackListener);
      current.removeEventListener("unmute", this.trackListener);
    }
    this.stream = track ? new MediaStream([track]) : null;
    this.video.srcObject = this.stream;
    if (track) {
      this.trackListener = () => this.refreshVideo();
      track.addEventListener("mute", this.trackListener);
      track.addEventListener("unmute", this.trackListener);
      this.video.play().catch(() => {});
    }
    this.refreshVideo();
  }

  refreshVideo() {
    const track = this.stream?.getVideoTracks()[0];
    const live = Boolean(
      track && track.readyState === "live" && !track.muted && this.video.videoWidth > 0,
    );
    this.el.classList.toggle("has-video", live && !this.videoOff);
  }

  /** Updates labels and state flags from a participant record. */
  update(participant, { self = false, quality = null, speaking = false } = {}) {
    const name = participant?.name ?? "";
    if (name !== this.lastName) {
      this.avatarBox.replaceChildren(avatar(name, this.participantId));
      this.lastName = name;
    }
    let label;
    if (this.source === "screen") label = self ? t("tile.yourScreen") : t("tile.screen", { name });
    else label = self ? t("tile.you", { name }) : name;
    // Guests are labelled as such everywhere (the name is only what they typed).
    if (participant?.guest) label += ` · ${t("people.guest")}`;
    this.nameEl.textContent = label;
    this.el.dataset.guest = String(Boolean(participant?.guest));
    const d = this.el.dataset;
    const camera = this.source === "camera";
    d.audioMuted = String(camera && Boolean(participant?.audio_muted));
    d.videoMuted = String(camera && Boolean(participant?.video_muted));
    d.hand = String(camera && Boolean(participant?.hand_raised));
    d.reconnecting = String(Boolean(participant?.reconnecting));
    this.videoOff = camera && Boolean(participant?.video_muted);
    this.el.classList.toggle("speaking", speaking && camera);
    this.statusEl.textContent = participant?.reconnecting ? t("tile.reconnecting") : "";
    const q = quality || "unknown";
    this.qualityEl.dataset.quality = q;
    this.qualityEl.setAttribute("aria-label", t(`quality.${q}`));
    this.qualityEl.title = t(`quality.${q}`);
    const states = [label];
    if (d.audioMuted === "true") states.push(t("tile.muted"));
    if (d.videoMuted === "true") states.push(t("tile.cameraOff"));
    if (d.hand === "true") states.push(t("tile.hand"));
    if (participant?.reconnecting) states.push(t("tile.reconnecting"));
    if (speaking && camera) states.push(t("tile.speaking"));
    this.el.setAttribute("aria-label", states.join(", "));
    this.refreshVideo();
  }

  /** Rendered size in CSS pixels, 0×0 when not visible. */
  renderedSize() {
    if (!this.el.isConnected || this.el.hidden || this.hiddenByPage) return { width: 0, height: 0 };
    return { width: this.el.clientWidth, height: this.el.clientHeight };
  }

  destroy() {
    this.setTrack(null);
    this.el.remove();
  }
}

/**
 * Arranges tiles: a paged adaptive grid, or (with `stageKey`) one tile large on the stage and
 * the rest in a paged strip below it. Calls `onChange()` after every layout so the app can
 * send new `layer` sizes to the server.
 */
export class TileGrid {
  constructor({ videos, grid, stage, pager, prev, next, label, onChange }) {
    Object.assign(this, { videos, grid, stage, pager, prevBtn: prev, nextBtn: next, label });
    this.onChange = onChange;
    this.tiles = [];
    this.stageKey = null;
    this.page = 0;
    this.pages = 1;
    prev.addEventListener("click", () => this.goTo(this.page - 1));
    next.addEventListener("click", () => this.goTo(this.page + 1));
    new ResizeObserver(() => this.layout()).observe(videos);
  }

  set(tiles, stageKey) {
    this.tiles = tiles;
    this.stageKey = stageKey && tiles.some((tile) => tile.key === stageKey) ? stageKey : null;
    this.layout();
  }

  goTo(page) {
    this.page = page;
    this.layout();
  }

  layout() {
    const stageTile = this.tiles.find((tile) => tile.key === this.stageKey) || null;
    const rest = this.tiles.filter((tile) => tile !== stageTile);
    this.videos.classList.toggle("with-stage", stageTile !== null);
    this.stage.hidden = stageTile === null;
    if (stageTile && stageTile.el.parentElement !== this.stage) {
      this.stage.replaceChildren(stageTile.el);
    } else if (!stageTile) {
      this.stage.replaceChildren();
    }
    if (stageTile) stageTile.hiddenByPage = false;

    const width = this.videos.clientWidth;
    const height = this.videos.clientHeight;
    const pagerHeight = 44;
    let size;
    let shape;
    if (stageTile) {
      // A strip of small tiles under the stage.
      const stripH = Math.max(72, Math.min(150, Math.round(height * 0.2)));
      const tileW = Math.round(stripH * TILE_ASPECT);
      size = Math.max(1, Math.floor((width + GAP) / (tileW + GAP)));
      shape = { cols: size, tileWidth: tileW, tileHeight: stripH };
    } else {
      size = pageSize(width, height - pagerHeight);
      if (rest.length <= size) size = rest.length;
    }
    const paged = paginate(rest, Math.max(1, size), this.page);
    this.page = paged.page;
    this.pages = paged.pages;
    const usableH = this.pages > 1 || stageTile ? height - pagerHeight : height;
    if (!stageTile) shape = gridShape(paged.items.length, width, usableH);
    this.grid.style.setProperty("--cols", String(shape.cols));
    this.grid.style.setProperty("--tile-w", `${shape.tileWidth}px`);
    this.grid.style.setProperty("--tile-h", `${shape.tileHeight}px`);
    this.grid.hidden = rest.length === 0;

    const visible = new Set(paged.items);
    const order = [...paged.items, ...rest.filter((tile) => !visible.has(tile))];
    for (const tile of order) {
      tile.hiddenByPage = !visible.has(tile);
      tile.el.hidden = tile.hiddenByPage;
      if (tile.el.parentElement !== this.grid) this.grid.append(tile.el);
    }
    // Re-append in order only when it differs (moving nodes is cheap but not free).
    const current = Array.from(this.grid.children);
    if (order.length !== current.length || order.some((tile, i) => current[i] !== tile.el)) {
      for (const tile of order) this.grid.append(tile.el);
    }
    for (const el of Array.from(this.grid.children)) {
      if (!order.some((tile) => tile.el === el)) el.remove();
    }
    this.pager.hidden = this.pages <= 1;
    this.label.textContent = t("grid.page", { page: this.page + 1, pages: this.pages });
    this.prevBtn.disabled = this.page === 0;
    this.nextBtn.disabled = this.page >= this.pages - 1;
    for (const tile of this.tiles) {
      if (tile.el.isConnected && tile.video.paused && tile.stream) tile.video.play().catch(() => {});
    }
    this.onChange?.();
  }
}
