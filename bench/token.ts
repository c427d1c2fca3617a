import { SignJWT } from 'jose';

/** The bench's bearer token: HS256 with `secret`, valid for 6 h (every target is sent the same one). */
export async function signToken(secret: string): Promise<string> {
  return new SignJWT({ scope: 'bench' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('bench')
    .setIssuedAt()
    .setExpirationTime('6h')
    .sign(new TextEncoder().encode(secret));
}
