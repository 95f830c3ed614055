// Money and quantities as exact integers (fen, hundredths), never floats: the price preview must
// match the server's billing/pricing.py to the fen.
//   amount = round_half_up(unit price × quantity) to the fen
//   government share = min(round_half_up(amount × rate), balance)
//   senior share = amount − government share

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

// "12.50" -> {digits: 1250n, scale: 2}; null when it is not a plain non-negative decimal.
export function parseDecimal(text) {
  const match = DECIMAL.exec(String(text).trim());
  if (!match) {
    return null;
  }
  const fraction = match[2] || "";
  return { digits: BigInt(match[1] + fraction), scale: fraction.length };
}

// The decimal text at `scale` places, exactly, as an integer; null if it has more places.
export function toScaled(text, scale) {
  const number = parseDecimal(text);
  if (!number) {
    return null;
  }
  if (number.scale > scale) {
    const extra = 10n ** BigInt(number.scale - scale);
    if (number.digits % extra !== 0n) {
      return null;
    }
    return number.digits / extra;
  }
  return number.digits * 10n ** BigInt(scale - number.scale);
}

export const fen = (text) => toScaled(text, 2);
export const hundredths = (text) => toScaled(text, 2);

// n / d rounded half up, for n ≥ 0 and d > 0.
export function divideHalfUp(n, d) {
  return (2n * n + d) / (2n * d);
}

// 1250n -> "12.50"
export function formatFen(value) {
  const sign = value < 0n ? "-" : "";
  const abs = value < 0n ? -value : value;
  return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, "0")}`;
}

// 150n hundredths -> "1.5"; 100n -> "1": a quantity as people write it.
export function formatQuantity(value) {
  const whole = value / 100n;
  const rest = value % 100n;
  if (rest === 0n) {
    return String(whole);
  }
  return `${whole}.${String(rest).padStart(2, "0").replace(/0$/, "")}`;
}

// "0.7000" -> "70"; "0.7250" -> "72.5"
export function formatPercent(rateText) {
  const rate = parseDecimal(rateText);
  if (!rate) {
    return "";
  }
  // percent × 100 (two places) = digits × 10^4 / 10^scale, when exact
  const scaled = rate.digits * 10000n;
  const divisor = 10n ** BigInt(rate.scale);
  const value = divideHalfUp(scaled, divisor);
  return formatQuantity(value);
}

// The split in fen, as the server computes it: the API's texts (the quantity may also be a
// BigInt of hundredths); null if something is unreadable.
export function splitPrice({ unitPrice, quantity, rate, balance }) {
  const price = fen(unitPrice);
  const count = typeof quantity === "bigint" ? quantity : hundredths(quantity);
  const share = parseDecimal(rate);
  const left = fen(balance);
  if (price === null || count === null || share === null || left === null) {
    return null;
  }
  const amount = divideHalfUp(price * count, 100n);
  let government = divideHalfUp(amount * share.digits, 10n ** BigInt(share.scale));
  const short = government > left;
  if (short) {
    government = left;
  }
  return { amount, government, senior: amount - government, balanceShort: short };
}
