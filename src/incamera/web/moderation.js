// Moderation in the meeting page: the waiting list (lobby) with "let in"/"decline", the
// per-person actions (mute, stop video, remove, roles), the moderator bar (mute everyone,
// lock, end for everyone), the access settings and the list of open invitations and
// blocks (revoke / allow again). Rendering only: every action goes to the `actions`
// callbacks, which send the signalling requests (docs/protocol.md, "Lobby and
// moderation"). The server enforces all of it; the buttons are just the way in.

import { h } from "./dom.js";
import { language, t } from "./i18n.js";

/** Whether `participant` is a moderator. */
export const isModerator = (participant) => participant?.role === "moderator";

/** "guest" / "moderator" labels shown next to a name everywhere (people list, tiles). */
export function roleTags(participant) {
  const tags = [];
  if (participant?.guest) tags.push(t("people.guest"));
  if (isModerator(participant)) tags.push(t("people.moderator"));
  return tags;
}

/** The lobby list for moderators: one row per waiting person with let in / decline. */
export function renderLobby({ section, heading, list }, waiting, actions) {
  section.hidden = waiting.length === 0;
  heading.textContent = t("lobby.waiting", { count: waiting.length });
  list.replaceChildren(
    ...waiting.map((person) =>
      h(
        "li",
        { dataset: { waiting: person.id } },
        h(
          "span",
          { class: "who" },
          person.name,
          h("small", { class: "tag", text: person.guest ? t("people.guest") : person.account || "" }),
        ),
        h(
          "span",
          { class: "actions" },
          button(t("lobby.admit"), "admit", () => actions.admit(person)),
          button(t("lobby.deny"), "deny", () => actions.deny(person)),
        ),
      ),
    ),
  );
}

/** The moderator's buttons for one other participant in the people list. */
export function participantActions(participant, actions, { encryptionAdmit = false } = {}) {
  const name = participant.name;
  return h(
    "span",
    { class: "actions" },
    encryptionAdmit
      ? button(t("mod.encryptionAdmit"), "encryption-admit", () => actions.encryptionAdmit(participant))
      : null,
    participant.audio_muted ? null : button(t("mod.mute"), "mute", () => actions.moderate(participant, "mute")),
    participant.video_muted
      ? null
      : button(t("mod.stopVideo"), "stop-video", () => actions.moderate(participant, "stop_video")),
    participant.screen_sharing
      ? button(t("mod.stopScreen"), "stop-screen", () => actions.moderate(participant, "stop_screen"))
      : null,
    isModerator(participant)
      ? button(t("mod.demote"), "demote", () => actions.setRole(participant, "participant"))
      : button(t("mod.promote"), "promote", () => actions.setRole(participant, "moderator")),
    button(t("mod.remove"), "remove", () => {
      if (!actions.confirm(t("mod.removeConfirm", { name }))) return;
      const block = actions.confirm(t("mod.blockConfirm", { name }));
      actions.moderate(participant, "remove", { block });
    }),
  );
}

/** Shows the moderator bar and the access form for moderators, with the current policy. */
export function renderModeratorControls(elements, policy, moderator) {
  elements.bar.hidden = !moderator;
  elements.form.hidden = !moderator;
  elements.invite.hidden = !moderator;
  elements.lists.hidden = !moderator;
  if (!policy) return;
  elements.lock.setAttribute("aria-pressed", String(Boolean(policy.locked)));
  elements.lock.textContent = t(policy.locked ? "mod.unlock" : "mod.lock");
  if (document.activeElement && elements.form.contains(document.activeElement)) return;
  elements.lobby.value = policy.lobby || "off";
  elements.membersOnly.checked = Boolean(policy.members_only);
  elements.guests.checked = policy.guests_allowed !== false;
  elements.pin.placeholder = policy.pin_set ? "••••" : "";
}

let renderedAccess = { access: undefined, language: null };

/** The moderators' list of open invitations and blocks (the `access` reply of
 * `list_access`; null: not loaded yet), with "revoke" and "allow again" per row. */
export function renderAccessLists({ invitations, blocks }, access, actions) {
  // Only when the list or the language changed: a re-render would take the keyboard focus
  // off a button whenever someone joins or unmutes.
  if (renderedAccess.access === access && renderedAccess.language === language()) return;
  renderedAccess = { access, language: language() };
  if (!access) {
    invitations.replaceChildren();
    blocks.replaceChildren();
    return;
  }
  const when = new Intl.DateTimeFormat(language(), { dateStyle: "medium", timeStyle: "short" });
  const date = (iso) => when.format(new Date(iso));
  invitations.replaceChildren(
    ...(access.invitations.length === 0
      ? [h("li", { class: "hint", text: t("accessList.noInvitations") })]
      : access.invitations.map((invitation) => {
          const name = invitation.name || t("accessList.noName");
          const role = t(invitation.role === "moderator" ? "invite.moderator" : "invite.participant");
          return h(
            "li",
            { dataset: { invitation: invitation.id } },
            h(
              "span",
              { class: "who" },
              name,
              h("small", { text: `${role} · ${t("accessList.expires", { date: date(invitation.expires_at) })}` }),
            ),
            button(t("accessList.revoke"), "revoke-invitation", () => actions.revokeInvitation(invitation), {
              id: invitation.id,
              label: t("accessList.revokeLabel", { name }),
            }),
          );
        })),
  );
  blocks.replaceChildren(
    ...(access.blocks.length === 0
      ? [h("li", { class: "hint", text: t("accessList.noBlocks") })]
      : access.blocks.map((block) => {
          const name = block.name || t("accessList.unknownName");
          const kind = t(block.kind === "guest" ? "people.guest" : "accessList.signedIn");
          return h(
            "li",
            { dataset: { block: block.id } },
            h(
              "span",
              { class: "who" },
              name,
              h("small", { text: `${kind} · ${t("accessList.since", { date: date(block.since) })}` }),
            ),
            button(t("accessList.unblock"), "unblock", () => actions.unblock(block), {
              id: block.id,
              label: t("accessList.unblockLabel", { name }),
            }),
          );
        })),
  );
}

function button(text, action, onClick, { id, label } = {}) {
  const el = h("button", {
    type: "button",
    class: "secondary small",
    dataset: id === undefined ? { action } : { action, id },
    "aria-label": label,
    text,
  });
  el.addEventListener("click", onClick);
  return el;
}
