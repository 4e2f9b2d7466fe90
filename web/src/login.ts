// The sign-in / sign-up page. It never redirects by itself (the gateway always serves /login),
// so a stale or missing session can never bounce the user between pages.
import { AuthRequestError, signIn, signUp, takeSessionEndedNotice } from "./session";

const errorBox = must<HTMLParagraphElement>("error");
const notice = must<HTMLParagraphElement>("notice");
const signInForm = must<HTMLFormElement>("sign-in-form");
const signUpForm = must<HTMLFormElement>("sign-up-form");

function must<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

function field(form: HTMLFormElement, name: string): HTMLInputElement {
  const el = form.elements.namedItem(name);
  if (!(el instanceof HTMLInputElement)) throw new Error(`missing field ${name}`);
  return el;
}

function showError(text: string, focus?: HTMLElement): void {
  errorBox.textContent = text;
  focus?.focus();
}

/** Checks the browser's own constraints and names the first broken one in words. */
function firstInvalid(form: HTMLFormElement): HTMLInputElement | undefined {
  for (const el of Array.from(form.elements)) {
    if (el instanceof HTMLInputElement && !el.checkValidity()) return el;
  }
  return undefined;
}

function describeInvalid(input: HTMLInputElement): string {
  const label = labelText(input);
  if (input.validity.valueMissing) return `${label} is required.`;
  if (input.validity.typeMismatch) return `${label} is not a valid email address.`;
  if (input.validity.tooShort) return `${label} must have at least ${input.minLength} characters.`;
  return `${label} is not valid.`;
}

function labelText(input: HTMLInputElement): string {
  const label = input.labels?.[0];
  const text = label?.firstChild?.textContent?.trim();
  return text && text.length > 0 ? text : input.name;
}

async function submit(form: HTMLFormElement, action: () => Promise<void>): Promise<void> {
  errorBox.textContent = "";
  notice.textContent = "";
  const invalid = firstInvalid(form);
  if (invalid) {
    invalid.setAttribute("aria-invalid", "true");
    showError(describeInvalid(invalid), invalid);
    return;
  }
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  const button = form.querySelector<HTMLButtonElement>("button[type=submit]");
  if (button) button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    await action();
    window.location.assign("/dashboard");
  } catch (err) {
    const text = err instanceof AuthRequestError ? err.message : "Something went wrong, try again.";
    showError(text);
    if (button) button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

signInForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void submit(signInForm, () =>
    signIn(field(signInForm, "email").value.trim(), field(signInForm, "password").value),
  );
});

signUpForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void submit(signUpForm, () =>
    signUp(
      field(signUpForm, "name").value.trim(),
      field(signUpForm, "email").value.trim(),
      field(signUpForm, "password").value,
    ),
  );
});

if (takeSessionEndedNotice()) {
  notice.textContent = "Your session has ended. Please sign in again.";
}
