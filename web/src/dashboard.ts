// The dashboard: the signed-in user's todos over grpc-web. All todos are loaded once (pages of
// 100, following next_page_token) and filtered here, so "N items left" is always exact.
import type { Todo } from "./gen/todo/v1/todo_pb";
import { authClient, describeError, isNotFound, isUnauthenticated, todoClient } from "./rpc";
import { leaveForLogin, signOut, AuthRequestError } from "./session";
import { newRequestId } from "./ids";

type Filter = "all" | "active" | "completed";
const FILTERS: readonly Filter[] = ["all", "active", "completed"];
const PAGE_SIZE = 100;
// A runaway page_token chain must not spin forever: 1000 pages of 100 is far above any real list.
const MAX_PAGES = 1000;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

const errorBox = $<HTMLParagraphElement>("error");
const signedInAs = $<HTMLSpanElement>("signed-in-as");
const signOutButton = $<HTMLButtonElement>("sign-out");
const newTodoForm = $<HTMLFormElement>("new-todo-form");
const newTodoTitle = $<HTMLInputElement>("new-todo-title");
const list = $<HTMLUListElement>("todo-list");
const loading = $<HTMLParagraphElement>("loading");
const empty = $<HTMLParagraphElement>("empty");
const footer = $<HTMLElement>("list-footer");
const itemsLeft = $<HTMLSpanElement>("items-left");
const clearCompletedButton = $<HTMLButtonElement>("clear-completed");
const filterButtons = Array.from(document.querySelectorAll<HTMLButtonElement>("button.filter"));

let todos: Todo[] = [];
let filter: Filter = filterFromHash();
let editingId: string | null = null;
let loaded = false;
let adding = false;
/** The last create that failed: retried with the same request id. */
let unsavedCreate: { title: string; requestId: string } | null = null;
/** Todos whose completed flag is being saved; a second click waits for the first. */
const toggling = new Set<string>();

// ---- errors -------------------------------------------------------------------------------

function showError(text: string): void {
  errorBox.textContent = text;
}

function clearError(): void {
  errorBox.textContent = "";
}

/** One place for every failed call: no session → sign-in page (once), otherwise words. */
function fail(err: unknown): void {
  if (isUnauthenticated(err)) {
    showError("Your session has ended. Taking you to the sign-in page…");
    leaveForLogin();
    return;
  }
  showError(describeError(err));
}

// ---- calls --------------------------------------------------------------------------------

async function loadUser(): Promise<void> {
  try {
    const { user } = await authClient.validateSession({});
    signedInAs.textContent = "";
    if (user) {
      signedInAs.append("Signed in as ");
      const strong = document.createElement("strong");
      strong.id = "user-email";
      strong.textContent = user.email;
      signedInAs.append(strong);
    }
  } catch (err) {
    signedInAs.textContent = "";
    fail(err);
  }
}

async function loadTodos(): Promise<void> {
  const all: Todo[] = [];
  let pageToken = "";
  loading.replaceChildren("Loading…");
  loading.hidden = false;
  try {
    for (let page = 0; page < MAX_PAGES; page++) {
      const response = await todoClient.listTodos({ pageSize: PAGE_SIZE, pageToken });
      all.push(...response.todos);
      pageToken = response.nextPageToken;
      if (!pageToken) break;
    }
    todos = all;
    loaded = true;
    render();
  } catch (err) {
    fail(err);
    if (isUnauthenticated(err)) return;
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "secondary";
    retry.textContent = "Try again";
    retry.addEventListener("click", () => {
      clearError();
      void loadTodos();
    });
    loading.replaceChildren("Your todos could not be loaded. ", retry);
  }
}

async function addTodo(title: string): Promise<void> {
  if (adding) return;
  if (!loaded) {
    showError("Your todos are not loaded yet: load them first, then add.");
    return;
  }
  adding = true;
  clearError();
  // Retrying the same title after a failure reuses its idempotency key, so a create that did
  // reach the server before the answer was lost is not made twice.
  if (unsavedCreate?.title !== title) unsavedCreate = { title, requestId: newRequestId() };
  try {
    const todo = await todoClient.createTodo(unsavedCreate);
    unsavedCreate = null;
    todos = [...todos.filter((t) => t.id !== todo.id), todo];
    newTodoTitle.value = "";
    render();
  } catch (err) {
    fail(err);
  } finally {
    adding = false;
  }
}

async function updateTodo(
  id: string,
  change: { title?: string; completed?: boolean },
): Promise<boolean> {
  clearError();
  try {
    const updated = await todoClient.updateTodo({ id, ...change });
    todos = todos.map((t) => (t.id === updated.id ? updated : t));
    return true;
  } catch (err) {
    forgetIfGone(err, id);
    fail(err);
    return false;
  }
}

async function deleteTodo(id: string): Promise<void> {
  clearError();
  try {
    await todoClient.deleteTodo({ id });
    todos = todos.filter((t) => t.id !== id);
  } catch (err) {
    forgetIfGone(err, id);
    fail(err);
  }
  render();
}

async function clearCompleted(): Promise<void> {
  clearError();
  const done = todos.filter((t) => t.completed);
  const results = await Promise.allSettled(done.map((t) => todoClient.deleteTodo({ id: t.id })));
  const gone = new Set<string>();
  let firstError: unknown;
  results.forEach((result, i) => {
    const id = done[i]?.id;
    if (id === undefined) return;
    if (result.status === "fulfilled" || isNotFound(result.reason)) gone.add(id);
    else firstError ??= result.reason;
  });
  todos = todos.filter((t) => !gone.has(t.id));
  render();
  if (firstError !== undefined) fail(firstError);
}

/** A todo the server says does not exist (any more) is dropped from the list. */
function forgetIfGone(err: unknown, id: string): void {
  if (isNotFound(err)) todos = todos.filter((t) => t.id !== id);
}

// ---- rendering ----------------------------------------------------------------------------

function visible(todo: Todo): boolean {
  if (filter === "active") return !todo.completed;
  if (filter === "completed") return todo.completed;
  return true;
}

function render(): void {
  const focusKey = (document.activeElement as HTMLElement | null)?.dataset?.focus;
  loading.hidden = loaded;

  list.replaceChildren(...todos.filter(visible).map(renderItem));

  const left = todos.filter((t) => !t.completed).length;
  const completed = todos.length - left;
  itemsLeft.textContent = `${left} ${left === 1 ? "item" : "items"} left`;
  footer.hidden = todos.length === 0;
  // Hidden but still taking its place, so the filters do not jump when it comes and goes.
  clearCompletedButton.classList.toggle("invisible", completed === 0);
  for (const button of filterButtons) {
    button.setAttribute("aria-pressed", String(button.dataset.filter === filter));
  }

  const shown = list.children.length;
  empty.hidden = !loaded || shown > 0;
  empty.textContent =
    todos.length === 0
      ? "Nothing to do yet. Add your first todo above."
      : filter === "active"
        ? "No active todos."
        : "No completed todos.";

  // Re-rendering replaces the nodes: put keyboard focus back where it was (or somewhere sane).
  if (editingId !== null) {
    const input = list.querySelector<HTMLInputElement>("input.edit");
    input?.focus();
    input?.select();
  } else if (focusKey) {
    const target = document.querySelector<HTMLElement>(`[data-focus="${CSS.escape(focusKey)}"]`);
    // A control that vanished or was hidden (filtered out, "Clear completed" with nothing left)
    // hands focus to the new-todo field rather than dropping it on <body>.
    target?.focus();
    if (!target || document.activeElement !== target) newTodoTitle.focus();
  }
}

function renderItem(todo: Todo): HTMLLIElement {
  const li = document.createElement("li");
  li.className = todo.completed ? "todo completed" : "todo";
  li.dataset.id = todo.id;

  const toggle = document.createElement("input");
  toggle.type = "checkbox";
  toggle.className = "toggle";
  toggle.checked = todo.completed;
  toggle.id = `toggle-${todo.id}`;
  toggle.dataset.focus = `toggle:${todo.id}`;
  toggle.setAttribute("aria-label", `Completed: ${todo.title}`);
  // Not `disabled` while the call runs: disabling the focused box would drop keyboard focus.
  toggle.addEventListener("change", () => {
    if (toggling.has(todo.id)) {
      toggle.checked = !toggle.checked;
      return;
    }
    toggling.add(todo.id);
    toggle.setAttribute("aria-busy", "true");
    void updateTodo(todo.id, { completed: toggle.checked }).then(() => {
      toggling.delete(todo.id);
      render();
    });
  });
  li.append(toggle);

  if (editingId === todo.id) {
    li.classList.add("editing");
    li.append(renderEditor(todo));
    return li;
  }

  const title = document.createElement("span");
  title.className = "title";
  title.textContent = todo.title;
  title.addEventListener("dblclick", () => startEditing(todo.id));
  li.append(title);

  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "icon edit-button";
  edit.textContent = "Edit";
  edit.dataset.focus = `edit:${todo.id}`;
  edit.setAttribute("aria-label", `Edit “${todo.title}”`);
  edit.addEventListener("click", () => startEditing(todo.id));

  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "icon delete-button";
  remove.textContent = "Delete";
  remove.dataset.focus = `delete:${todo.id}`;
  remove.setAttribute("aria-label", `Delete “${todo.title}”`);
  remove.addEventListener("click", () => {
    remove.disabled = true;
    // Focus moves to the next item's delete button, or the new-todo field, once this one is gone.
    const next = li.nextElementSibling ?? li.previousElementSibling;
    const nextId = next instanceof HTMLElement ? next.dataset.id : undefined;
    void deleteTodo(todo.id).then(() => {
      const target = nextId
        ? document.querySelector<HTMLElement>(`[data-focus="${CSS.escape(`delete:${nextId}`)}"]`)
        : null;
      (target ?? newTodoTitle).focus();
    });
  });

  const actions = document.createElement("span");
  actions.className = "actions";
  actions.append(edit, remove);
  li.append(actions);
  return li;
}

function renderEditor(todo: Todo): HTMLElement {
  const wrapper = document.createElement("span");
  wrapper.className = "editor";
  const label = document.createElement("label");
  label.className = "visually-hidden";
  label.htmlFor = `edit-${todo.id}`;
  label.textContent = `Edit title of “${todo.title}”`;
  const input = document.createElement("input");
  input.type = "text";
  input.className = "edit";
  input.id = `edit-${todo.id}`;
  input.maxLength = 200;
  input.value = todo.title;
  input.dataset.focus = `editor:${todo.id}`;

  // Enter saves, Escape cancels, leaving the field saves; `done` makes sure only one of them acts.
  let done = false;
  const finish = (save: boolean): void => {
    if (done) return;
    done = true;
    if (!save) {
      stopEditing(todo.id);
      return;
    }
    void saveTitle(todo, input.value).then((ok) => {
      if (!ok) done = false;
    });
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
  wrapper.append(label, input);
  return wrapper;
}

function startEditing(id: string): void {
  editingId = id;
  render();
}

/** Leaves edit mode and returns focus to the item's Edit button. */
function stopEditing(id: string): void {
  editingId = null;
  render();
  document.querySelector<HTMLElement>(`[data-focus="${CSS.escape(`edit:${id}`)}"]`)?.focus();
}

async function saveTitle(todo: Todo, raw: string): Promise<boolean> {
  const title = raw.trim();
  if (title === todo.title) {
    stopEditing(todo.id);
    return true;
  }
  if (title === "") {
    showError("A todo needs a title. Press Escape to keep the old one.");
    return false;
  }
  const ok = await updateTodo(todo.id, { title });
  if (ok || !todos.some((t) => t.id === todo.id)) {
    stopEditing(todo.id);
    return true;
  }
  return false;
}

// ---- filter -------------------------------------------------------------------------------

function filterFromHash(): Filter {
  const name = window.location.hash.replace(/^#\/?/, "");
  return (FILTERS as readonly string[]).includes(name) ? (name as Filter) : "all";
}

function setFilter(next: Filter): void {
  filter = next;
  const hash = next === "all" ? "" : `#/${next}`;
  if (window.location.hash !== hash) {
    history.replaceState(null, "", `${window.location.pathname}${window.location.search}${hash}`);
  }
  render();
}

// ---- wiring -------------------------------------------------------------------------------

newTodoForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const title = newTodoTitle.value.trim();
  if (title === "") {
    showError("Type a title for the new todo first.");
    newTodoTitle.focus();
    return;
  }
  void addTodo(title);
});

for (const button of filterButtons) {
  button.dataset.focus = `filter:${button.dataset.filter}`;
  button.addEventListener("click", () => {
    const next = button.dataset.filter as Filter;
    if (FILTERS.includes(next)) setFilter(next);
  });
}

window.addEventListener("hashchange", () => setFilter(filterFromHash()));

clearCompletedButton.dataset.focus = "clear-completed";
clearCompletedButton.addEventListener("click", () => void clearCompleted());

signOutButton.addEventListener("click", () => {
  signOutButton.disabled = true;
  clearError();
  signOut()
    .then(() => window.location.assign("/login"))
    .catch((err: unknown) => {
      signOutButton.disabled = false;
      showError(err instanceof AuthRequestError ? err.message : "Sign out failed, try again.");
    });
});

void loadUser();
void loadTodos();
newTodoTitle.focus();
