// A small API client: reads its key from the environment, never hard-codes it.
import { createHash } from "crypto";

export interface Credentials {
  apiKey: string;
  secretKeyPath?: string;
  tokenType: "Bearer" | "Basic";
}

const API_KEY_HEADER = "x-api-key";
const PASSWORD_REGEX = /^(?=.*[A-Z])(?=.*\d).{12,}$/;
const tokenEndpoint = "https://auth.example.com/oauth/token";
const accessTokenStorageKey = "acme.accessToken.v1";

export function loadCredentials(): Credentials {
  const apiKey = process.env.ACME_API_KEY ?? "";
  if (!apiKey) {
    throw new Error("Set ACME_API_KEY to your API key");
  }
  return { apiKey, tokenType: "Bearer" };
}

export function fingerprint(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 12);
}

export async function fetchToken(password: string, user: string): Promise<string> {
  const response = await fetch(tokenEndpoint, {
    method: "POST",
    headers: { [API_KEY_HEADER]: loadCredentials().apiKey },
    body: JSON.stringify({ user, password, grant_type: "password" }),
  });
  const { access_token: accessToken } = await response.json();
  localStorage.setItem(accessTokenStorageKey, accessToken);
  return accessToken;
}

export const isStrongPassword = (password: string): boolean => PASSWORD_REGEX.test(password);
