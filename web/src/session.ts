// Leaving for the sign-in page when the session is gone, and the Better Auth calls (through the
// gateway's same-origin /api/auth/* proxy).
//
// No redirect loop is possible: the login page never redirects on its own, and the dashboard
// leaves for it at most once per page load (`leaving` guard), whatever number of calls fail.

const ENDED_FLAG = "todo.session-ended";
let leaving = false;

/** Sends the user to /login once; later calls while leaving do nothing. */
export function leaveForLogin(): void {
  if (leaving) return;
  leaving = true;
  try {
    sessionStorage.setItem(ENDED_FLAG, "1");
  } catch {
    // storage can be disabled; the notice on the login page is only a courtesy
  }
  window.location.replace("/login");
}

/** Whether the previous page left because the session ended (read once, then forgotten). */
export function takeSessionEndedNotice(): boolean {
  try {
    const ended = sessionStorage.getItem(ENDED_FLAG) === "1";
    sessionStorage.removeItem(ENDED_FLAG);
    return ended;
  } catch {
    return false;
  }
}

export class AuthRequestError extends Error {}

interface BetterAuthError {
  code?: string;
  message?: string;
}

async function postAuth(path: string, body: unknown): Promise<void> {
  let response: Response;
  try {
    response = await fetch(`/api/auth/${path}`, {
      method: "POST",
      credentials: "include",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new AuthRequestError("Service unavailable, try again.");
  }
  if (response.ok) return;
  let detail: BetterAuthError = {};
  try {
    detail = (await response.json()) as BetterAuthError;
  } catch {
    // non-JSON error body: fall back to the status alone
  }
  throw new AuthRequestError(wordAuthFailure(response.status, detail));
}

function wordAuthFailure(status: number, detail: BetterAuthError): string {
  switch (detail.code) {
    case "INVALID_EMAIL_OR_PASSWORD":
      return "Wrong email or password.";
    case "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL":
    case "USER_ALREADY_EXISTS":
      return "An account with this email already exists. Sign in instead.";
    case "PASSWORD_TOO_SHORT":
      return "The password is too short: use at least 8 characters.";
    case "PASSWORD_TOO_LONG":
      return "The password is too long.";
    case "INVALID_EMAIL":
      return "That email address is not valid.";
    case "INVALID_ORIGIN":
    case "MISSING_OR_NULL_ORIGIN":
      return "This page's address is not trusted by the sign-in service.";
  }
  if (status === 429) return "Too many attempts, wait a few seconds and try again.";
  if (status >= 500 || status === 404) return "Service unavailable, try again.";
  return detail.message ? `${detail.message}.`.replace(/\.\.$/, ".") : "That did not work, try again.";
}

export function signUp(name: string, email: string, password: string): Promise<void> {
  return postAuth("sign-up/email", { name, email, password });
}

export function signIn(email: string, password: string): Promise<void> {
  return postAuth("sign-in/email", { email, password });
}

export function signOut(): Promise<void> {
  return postAuth("sign-out", {});
}
