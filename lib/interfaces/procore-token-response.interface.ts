/** A token response from Procore's `POST /oauth/token`, validated. */
export interface ProcoreTokenResponse {
  access_token: string;
  token_type: string;
  /** Seconds the access token lives, counted from when the request was sent. */
  expires_in: number;
  /** Absent for client credentials; a refresh response without one keeps the stored refresh token. */
  refresh_token?: string;
  /** Epoch seconds, as Procore sends it. */
  created_at?: number;
}
