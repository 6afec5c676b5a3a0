// Drives RevenueCat's web SDK (@revenuecat/purchases-js) in Node against a subledger, as an
// app would, and prints what the SDK answered as one JSON object. The assertions live in
// tests/e2e/test_revenuecat_sdk.py; the plan (URL, keys, users) is the one argument.
const plan = JSON.parse(process.argv[2]);
const requested = []; // every request the SDK makes: all must go to subledger
const realFetch = globalThis.fetch;
globalThis.fetch = (url, init) => {
  requested.push(`${init?.method ?? "GET"} ${url}`);
  return realFetch(url, init);
};
const { Purchases, ErrorCode } = await import("@revenuecat/purchases-js");

// What the README shows: the proxy URL, and no analytics (they would go to RevenueCat).
const configure = (apiKey, appUserId) =>
  Purchases.configure({
    apiKey,
    appUserId,
    httpConfig: { proxyURL: plan.url },
    flags: { collectAnalyticsEvents: false },
  });

const info = (c) => ({
  originalAppUserId: c.originalAppUserId,
  active: Object.keys(c.entitlements.active).sort(),
  all: Object.keys(c.entitlements.all).sort(),
  activeSubscriptions: [...c.activeSubscriptions].sort(),
  subscriptions: Object.keys(c.subscriptionsByProductIdentifier).sort(),
  nonSubscriptions: c.nonSubscriptionTransactions.map((t) => t.productIdentifier),
  managementURL: c.managementURL,
});

async function failure(run) {
  try {
    await run();
    return null;
  } catch (e) {
    return { code: e.errorCode, name: ErrorCode[e.errorCode] ?? String(e), message: e.message };
  }
}

const out = {};
out.configureWithOldKey = await failure(() => configure(plan.oldKey, plan.users.active));
const sdk = configure(plan.key, plan.users.active);
out.active = info(await sdk.getCustomerInfo());
out.activeEntitled = await sdk.isEntitledTo(plan.entitlement);
out.expired = info(await sdk.changeUser(plan.users.expired));
out.expiredEntitled = await sdk.isEntitledTo(plan.entitlement);
out.unknown = info(await sdk.changeUser(plan.users.unknown));
out.anonymous = info(await sdk.changeUser(plan.users.anonymous));
out.isAnonymous = sdk.isAnonymous();
await sdk.setAttributes(plan.attributes);
const identified = await sdk.identifyUser(plan.users.identifyAs);
out.identify = {
  wasCreated: identified.wasCreated,
  appUserId: sdk.getAppUserId(),
  info: info(identified.customerInfo),
};
const again = await sdk.changeUser(plan.users.anonymous);
out.anonymousAfterIdentify = info(again);
sdk.close();
const wrong = configure(plan.unknownKey, plan.users.active);
out.unknownKey = await failure(() => wrong.getCustomerInfo());
wrong.close();
out.requested = requested;
process.stdout.write(JSON.stringify(out));
process.exit(0);
