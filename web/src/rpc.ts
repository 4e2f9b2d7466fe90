// grpc-web clients for the gateway (same origin) and the wording of their errors.
// The browser's HttpOnly session cookie rides along on every call (`credentials: "include"`);
// the gateway turns it into `cookie` metadata. Nothing here ever reads the cookie.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/auth/v1/auth_pb";
import { TodoService } from "./gen/todo/v1/todo_pb";

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  fetch: (input, init) => globalThis.fetch(input, { ...init, credentials: "include" }),
});

export const todoClient: Client<typeof TodoService> = createClient(TodoService, transport);
export const authClient: Client<typeof AuthService> = createClient(AuthService, transport);

export const UNAVAILABLE_TEXT = "Service unavailable, try again.";

/** True when the error means "no valid session": the caller must sign in again. */
export function isUnauthenticated(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}

/** True when the server says the todo does not exist (or is not the caller's). */
export function isNotFound(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.NotFound;
}

/** A sentence for the user describing a failed call. */
export function describeError(err: unknown): string {
  if (!(err instanceof ConnectError)) {
    return err instanceof TypeError ? UNAVAILABLE_TEXT : "Something went wrong, try again.";
  }
  switch (err.code) {
    case Code.Unavailable:
      return UNAVAILABLE_TEXT;
    case Code.InvalidArgument:
      return sentence(err.rawMessage) || "That input is not valid.";
    case Code.PermissionDenied:
      return "You are not allowed to do that.";
    case Code.NotFound:
      return "That todo no longer exists.";
    case Code.Unauthenticated:
      return "Your session has ended. Please sign in again.";
    case Code.DeadlineExceeded:
      return "The request took too long, try again.";
    case Code.ResourceExhausted:
      return "Too many requests, wait a moment and try again.";
    case Code.Unknown:
      // connect-web reports a failed fetch (network down, connection refused) as Unknown.
      return err.cause instanceof TypeError ? UNAVAILABLE_TEXT : "Something went wrong, try again.";
    default:
      return "Something went wrong, try again.";
  }
}

/** The server's message as a sentence: capital first letter, final period. */
function sentence(message: string): string {
  const text = message.trim();
  if (text === "") return "";
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
