// dates: a tool plugin written in JavaScript, built with componentize-js (npm). It answers
// calendar questions models get wrong: the days between two dates, a date plus some days, and
// the weekday of a date. Dates are ISO `YYYY-MM-DD`, in the proleptic Gregorian calendar, and
// never read the clock, so an answer depends on its arguments only.

const DATE = { type: "string", description: "A date as YYYY-MM-DD." };

const TOOLS = [
  {
    name: "days_between",
    description: "The number of days from one date to another (negative if `to` is earlier).",
    parametersJson: JSON.stringify({
      type: "object",
      properties: { from: DATE, to: DATE },
      required: ["from", "to"],
      additionalProperties: false,
    }),
    strict: true,
  },
  {
    name: "add_days",
    description: "The date a number of days after (or, if negative, before) a date, with its weekday.",
    parametersJson: JSON.stringify({
      type: "object",
      properties: { date: DATE, days: { type: "integer" } },
      required: ["date", "days"],
      additionalProperties: false,
    }),
    strict: true,
  },
  {
    name: "weekday",
    description: "The day of the week of a date.",
    parametersJson: JSON.stringify({
      type: "object",
      properties: { date: DATE },
      required: ["date"],
      additionalProperties: false,
    }),
    strict: true,
  },
];

const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const DAY_MS = 86400000;

// A thrown `{ tag, val }` is the call's `tool-error`: the model reads `val` and may retry.
function invalid(message) {
  return { tag: "invalid-arguments", val: message };
}

// Days since 1970-01-01 of an ISO date, refusing dates that do not exist (2023-02-29).
function parseDate(value, field) {
  const m = typeof value === "string" ? /^(-?\d{4,6})-(\d{2})-(\d{2})$/.exec(value) : null;
  if (!m) throw invalid(`'${field}' must be a date as YYYY-MM-DD, got ${JSON.stringify(value)}`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // setUTCFullYear, not Date.UTC: the latter reads years 0-99 as 1900-1999.
  const back = new Date(0);
  back.setUTCFullYear(y, mo - 1, d);
  const t = back.getTime();
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) {
    throw invalid(`'${field}' is not a date that exists: ${value}`);
  }
  return Math.round(t / DAY_MS);
}

function format(days) {
  const d = new Date(days * DAY_MS);
  const iso = d.toISOString().slice(0, 10);
  return `${iso} (${WEEKDAYS[d.getUTCDay()]})`;
}

export const tool = {
  describe() {
    return TOOLS;
  },

  invoke(ctx, name, argumentsJson) {
    let args;
    try {
      args = JSON.parse(argumentsJson);
    } catch (e) {
      throw invalid(`the arguments are not JSON: ${e.message}`);
    }
    switch (name) {
      case "days_between": {
        const n = parseDate(args.to, "to") - parseDate(args.from, "from");
        return { text: `${n} days`, annotations: [] };
      }
      case "add_days": {
        if (!Number.isInteger(args.days) || Math.abs(args.days) > 3650000) {
          throw invalid("'days' must be an integer within ±3,650,000");
        }
        return { text: format(parseDate(args.date, "date") + args.days), annotations: [] };
      }
      case "weekday":
        return { text: WEEKDAYS[new Date(parseDate(args.date, "date") * DAY_MS).getUTCDay()], annotations: [] };
      default:
        throw { tag: "unknown-tool", val: name };
    }
  },
};
