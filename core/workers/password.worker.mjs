// bcrypt in a worker thread: a hash costs ~0.3 s of CPU, which on the event
// loop would stall every chat the API is proxying meanwhile. Plain JS so it
// loads the same under tsx and compiled builds.
import bcrypt from 'bcryptjs';

export function hash({ password, cost }) {
  return bcrypt.hashSync(password, cost);
}

export function compare({ password, hash }) {
  return bcrypt.compareSync(password, hash);
}
