/*
 * The shopper's time zone, for dates written on the server. This script stores the browser's
 * IANA time zone (Intl) in the `aioshop-tz` cookie; pages rendered after that show dates in it
 * (web/cookies.py shopper_zone checks the name against zoneinfo's and ignores anything else).
 * Without JavaScript, or before the cookie is set, dates are in the shop's SHOP_TIMEZONE.
 */
(() => {
  "use strict";

  const COOKIE = "aioshop-tz";
  const ZONE_PATTERN = /^[A-Za-z0-9_+\-/]{1,64}$/;

  function storeZone() {
    let zone;
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    } catch (error) {
      return;
    }
    if (!zone || !ZONE_PATTERN.test(zone)) {
      return;
    }
    const current = document.cookie
      .split("; ")
      .find((part) => part.startsWith(COOKIE + "="));
    if (current === COOKIE + "=" + zone) {
      return;
    }
    const secure = location.protocol === "https:" ? "; secure" : "";
    document.cookie = COOKIE + "=" + zone + "; path=/; max-age=31536000; samesite=lax" + secure;
  }

  storeZone();
})();
