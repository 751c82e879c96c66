# Salesforce simulator seed for the lookup bench: N hand-written Contacts (awk -v n=10000).
#
# Why not {"generate":{"contacts":N}}: the simulator's generator draws phone numbers from 8 area
# codes x 100 fictional 555-01xx numbers and redraws until unique, so it never finishes above
# 800 Contacts (sim/salesforce.c gen_contact). These Contacts follow the generator's shape and
# mix instead: tiers Bronze/Silver/Gold/Platinum 50/30/15/5 %, matching points, preferences
# (a ;-joined multi-select picklist or null), e-mail, E.164 phone (555-01xx in 100 area codes),
# a 16-digit 7710... card with a Luhn check digit, and a SystemModstamp.
#
# Member i (0-based): Id 0035g0000L<i as 5 digits>AQA (the suffix of that pattern), loyalty id
# LY-<100000+i>, card 7710<i as 11 digits><Luhn>, phone +1<200+i/100>55501<i%100 as 2 digits>.
function luhn(s,   i, d, sum, dbl) {
  sum = 0; dbl = 1
  for (i = length(s); i >= 1; i--) {
    d = substr(s, i, 1) + 0
    if (dbl) { d *= 2; if (d > 9) d -= 9 }
    sum += d; dbl = !dbl
  }
  return (10 - sum % 10) % 10
}
function rnd() { state = (state * 69069 + 1) % 4294967296; return int(state / 65536) } # exact in doubles
BEGIN {
  if (n == "") n = 10000
  state = 42
  split("Olivia Liam Emma Noah Ava Mateo Sophia Lucas Mia Ethan Amara Kenji Priya Diego Fatima Hannah Omar Chloe Wei Isabel", first, " ")
  split("Smith Johnson Garcia Nguyen Patel Kim Brown Martinez Okafor Rossi Muller Silva Tanaka Cohen Walker Lopez Hughes Dubois Singh Chen", last, " ")
  split("Vegetarian|Vegan|Gluten Free|Dairy Free|Window Seat|Patio|Email Receipts|SMS Offers", prefs, "|")
  printf "{\"contacts\": [\n"
  for (i = 0; i < n; i++) {
    fn = first[rnd() % 20 + 1]; ln = last[rnd() % 20 + 1]
    roll = rnd() % 100
    if (roll < 50) { tier = "Bronze"; pts = rnd() % 1000 }
    else if (roll < 80) { tier = "Silver"; pts = 1000 + rnd() % 4000 }
    else if (roll < 95) { tier = "Gold"; pts = 5000 + rnd() % 10000 }
    else { tier = "Platinum"; pts = 15000 + rnd() % 35000 }
    k = rnd() % 3; p = ""
    for (j = 0; j < k; j++) {
      pr = prefs[rnd() % 8 + 1]
      if (index(p, pr) == 0) p = p (p == "" ? "" : ";") pr
    }
    card = sprintf("7710%011d", i); card = card luhn(card)
    t = 1767600000 + rnd() % (55 * 86400)
    printf "%s{\"Id\":\"0035g0000L%05dAQA\",\"FirstName\":\"%s\",\"LastName\":\"%s\"," \
      "\"Email\":\"%s.%s.%d@example.com\",\"MobilePhone\":\"+1%d55501%02d\",\"Phone_E164__c\":\"+1%d55501%02d\"," \
      "\"Loyalty_Id__c\":\"LY-%06d\",\"Loyalty_Card__c\":\"%s\",\"Loyalty_Tier__c\":\"%s\",\"Loyalty_Points__c\":%d," \
      "\"Preferences__c\":%s,\"SystemModstamp\":\"%s\"}\n", (i ? "," : ""), i, fn, ln,
      tolower(fn), tolower(ln), i, 200 + int(i / 100), i % 100, 200 + int(i / 100), i % 100,
      100000 + i, card, tier, pts, (p == "" ? "null" : "\"" p "\""), strftime("%Y-%m-%dT%H:%M:%S.000Z", t, 1)
  }
  printf "]}\n"
}
