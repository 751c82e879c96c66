/*
 * The transform: one MICROS BI guest check (getGuestChecks, or the same shape pushed to
 * POST /v1/micros/guest-checks) → the Salesforce records that represent it. Pure: no I/O, no
 * clock, no allocation that outlives the call except *out. The loader upserts the records by
 * external id with sObject Collections, so sending the same check again replaces what was sent
 * before and no record needs an Id lookup first.
 *
 * CONFIGURATION ("transform" object; validated, unknown keys rejected naming them)
 *
 *   org                          required. Prefix of every external id ("ACME").
 *   locations                    required. {"<locRef>": location}, one per MICROS location:
 *     pricebook_id               required. Pricebook2Id of every order of the location.
 *     location_id                Salesforce Location Id, written to fields.location.
 *     currency                   CurrencyIsoCode; omit in a single-currency org (sending it
 *                                there is INVALID_FIELD).
 *     scale                      decimals of the currency, 0..4, default 2.
 *     sales_channel              written to fields.sales_channel.
 *     account_id                 AccountId (Order requires one): the walk-in account. Customer
 *                                matching replaces it; without it the order has no AccountId.
 *     revenue_centers            {"<rvcNum>": {"location_id", "sales_channel"}}: per revenue
 *                                center overrides of those two.
 *   order_status                 {"open", "closed", "cancelled"} → Order.Status values; default
 *                                "Draft", "Activated", "Cancelled". Open = clsdFlag false.
 *   order_external_id_field      default "POS_Check_Id__c".
 *   order_item_external_id_field default "POS_Line_Id__c".
 *   product_external_id_field    default "POS_Item_Number__c" (Product2, value = miNum).
 *   payment_object               "Payment" (standard; needs a Commerce/Payments licence) or any
 *                                custom object "X__c"; default "POS_Payment__c".
 *   payment_external_id_field    default "POS_Tender_Line_Id__c".
 *   adjustment_mode              "return_order" (default): adjustments go on a separate Order with
 *                                Type "Return" and fields.original_order → the sale's external id;
 *                                "reduction_order": IsReductionOrder true, OriginalOrder by
 *                                external id, items with OriginalOrderItem when the voided or
 *                                returned item is on the check (salesforce-wire §5.5).
 *   fields                       {"<name>": "<API name>" | null}: renames (or, with null, omits)
 *                                the custom fields below; unknown names are rejected.
 *
 *   Custom fields and their defaults (all written as documented types):
 *     Order:   location Location__c, location_ref POS_Location_Ref__c (the MICROS locRef as
 *              text, on sale and adjustment orders: reconciliation selects a location's orders
 *              by it, sync/recon.h), sales_channel Sales_Channel__c, check_number
 *              POS_Check_Number__c, revenue_center POS_Revenue_Center__c, workstation
 *              POS_Workstation__c, employee POS_Employee_Number__c, guest_count
 *              POS_Guest_Count__c, subtotal POS_Subtotal__c, tax POS_Tax__c, discount
 *              POS_Discount__c, service_charge POS_Service_Charge__c, tip POS_Tip__c, payments
 *              POS_Payments__c, check_total POS_Check_Total__c, reopened_from
 *              POS_Reopened_From__c, reopened_to POS_Reopened_To__c, original_order
 *              Original_Order__r (a lookup set by external id, so the __r relationship name).
 *     OrderItem: parent_line POS_Parent_Line_Id__c (the parent's external id as TEXT, not a
 *              lookup: a lookup by external id cannot resolve a record created in the same
 *              collection call), line_discount POS_Line_Discount__c, line_service_charge
 *              POS_Line_Service_Charge__c, pos_quantity POS_Quantity__c, moved POS_Moved__c,
 *              adjustment_type POS_Adjustment_Type__c ("void", "return", "error_correction"),
 *              reason_code POS_Reason_Code__c.
 *     payment: payment_order Order__r and payment_amount Amount__c (custom payment objects only:
 *              the standard Payment's amount is Amount), tender_number
 *              POS_Tender_Number__c, tender_name POS_Tender_Name__c.
 *
 * OUTPUT of pg_xf_check (all sObject records carry "attributes": {"type"}):
 *   order        the Order: external id "<org>-<locRef>-<guestCheckId>", EffectiveDate =
 *                clsdBusDt when closed else opnBusDt, Status, Pricebook2Id, CurrencyIsoCode,
 *                AccountId, the custom fields above. Money fields are decimal strings ("313.90");
 *                Salesforce accepts a JSON string for a currency/number field and a string cannot
 *                be printed as 313.89999999999998.
 *   items        OrderItems, one per sale menu-item line (condiments included), external id
 *                "<org>-<locRef>-<guestCheckLineItemId>", "Order": {order ext field: id},
 *                "Product2": {product field: "<miNum>"}, Quantity and UnitPrice (see AMOUNTS).
 *                PricebookEntryId is not set: the loader resolves it from (pricebook_id,
 *                Product2, currency) — one cached query per product, not per check.
 *   products     Product2 records (external id = miNum, Name from dims or "Menu item <miNum>")
 *                for the loader to upsert when it is configured to create missing products.
 *   payments     one record per tender line, external id from its guestCheckLineItemId, Amount =
 *                aggTtl. Standard Payment: Type "Sale", ProcessingMode "External", Status
 *                "Processed"; the loader sets PaymentGroupId (PaymentGroup.SourceObjectId = the
 *                Order) since a PaymentGroup has no external id. Custom objects: Name = tender
 *                name, fields.payment_order → the order's external id.
 *   adjustments  [] or one {"order": Order, "items": [OrderItem]}: the adjustment order
 *                "<order ext>-ADJ" linked to the sale, carrying voids, returns and error
 *                corrections as negative-quantity items. Salesforce allows one reduction order
 *                per original, hence one per check.
 *   totals       integers in minor units: subtotal (menu items incl. adjustments), items,
 *                adjustments, discount, service_charge, other, tax, tax_included, tip, payments,
 *                check_total (chkTtl), pay_total (payTtl), moved_out, moved_in, computed.
 *   flags        [{"code", ...}]: TOTAL_MISMATCH {difference = chkTtl − computed},
 *                PAYMENT_MISMATCH {difference = payTtl − Σ payments}, BALANCE_DUE {amount},
 *                CANCELLED, REOPENED {from, to}, LINES_MOVED {out, in}, UNIT_PRICE_INEXACT
 *                {line}, ORPHAN_LINE {line} (parDtlId names no line), NEGATIVE_TENDER {line}
 *                (the standard Payment object cannot hold it; route it to Refund).
 *                Flags never change an amount: a mismatch is reported, never "fixed".
 *
 * LINE RULES (micros-wire §1.4, §5)
 *   - Each detail line has exactly one of menuItem, discount, serviceCharge, tenderMedia,
 *     errorCorrect, other. Amounts are aggTtl/aggQty (aggregation-correct); dsp* is used only
 *     when agg* is absent and for the displayed-total check below.
 *   - Moved lines: the original keeps agg* and has doNotShowFlag true → still an item (fields.moved
 *     true). The copy on the other check has aggTtl = aggQty = 0 → not an item. Any line with
 *     aggTtl = aggQty = 0 is not an item.
 *   - Condiments (modFlag 1 or parDtlId set) are items whose fields.parent_line is the parent's
 *     external id (parDtlId → the line with that dtlId).
 *   - Discounts: at line level (fields.line_discount on the item) when parDtlId names an item, or
 *     dscMiNum is the miNum of an item line before it (the nearest one); else order level only.
 *     Always summed into totals.discount / fields.discount. Discounts are negative.
 *   - Service charges: at line level when parDtlId names an item, else order level; always in
 *     totals.service_charge.
 *   - Voids (vdFlag), error corrections (errCorFlag) and returns (returnFlag, on the line or its
 *     menuItem) of menu items are not sales: they become adjustment items (their own signed
 *     quantity and amount). The voided original stays an item, so the sale and its offset net
 *     out exactly as in MICROS' own sum. An errorCorrect line that carries an amount and
 *     names, in objectNum, a menu item sold earlier on the check is that item's error
 *     correction (an adjustment item of that product); other errorCorrect lines and other
 *     lines count in totals.other.
 *   - Every line's aggTtl lands in exactly one bucket, so no amount is dropped.
 *
 * AMOUNTS
 *   Quantity = aggQty (JSON integer when whole, else a decimal string with 3 decimals);
 *   UnitPrice = aggTtl / aggQty when that is a whole number of minor units (so Salesforce's
 *   TotalPrice = Quantity × UnitPrice is exactly aggTtl). When it is not (3 for 10.00), the line
 *   is folded to Quantity ±1, UnitPrice = |aggTtl|, the real quantity goes to fields.pos_quantity
 *   and UNIT_PRICE_INEXACT is flagged: TotalPrice stays exact, which is what reconciles.
 *   computed = items + adjustments + discount + service_charge + other + (tax − tax_included)
 *              − moved_out + moved_in
 *   i.e. the check as displayed (dsp*, doNotShowFlag false): a moved-out line is on the other
 *   check's chkTtl, a moved-in copy on this one. tax = Σ taxes[].taxCollTtl; tax_included =
 *   Σ inclTax of lines (inclusive/VAT tax already inside the line amounts), rounded to the
 *   currency. TOTAL_MISMATCH when computed ≠ chkTtl; PAYMENT_MISMATCH when Σ payments ≠ payTtl;
 *   a null/absent header total counts as 0. tipTotal is reported only: a charged tip already
 *   posts as a service-charge line.
 */
#ifndef PG_SYNC_TRANSFORM_H
#define PG_SYNC_TRANSFORM_H

#include <stddef.h>

#include <jansson.h>

#include "server/error.h"

struct pg_xf_config;

/**
 * Validate and compile the transform configuration (documented above). PG_ECONFIG with a reason
 * naming the key on any error, unknown keys included. cfg is borrowed; *out is new (free with
 * pg_xf_config_free).
 */
int pg_xf_config_new(const json_t *cfg, struct pg_xf_config **out, char *why, size_t whysz)
    PG_WARN_UNUSED;

void pg_xf_config_free(struct pg_xf_config *cfg);

/* The object and external id field names a compiled configuration uses (borrowed from cfg). */
struct pg_xf_names {
    const char *order_ext;      /* Order's external id field */
    const char *item_ext;       /* OrderItem's */
    const char *product_ext;    /* Product2's */
    const char *payment_object; /* "Payment" or the custom object */
    const char *payment_ext;    /* its external id field */
};

/** Fill out with cfg's names (for the loader, which upserts by them). */
void pg_xf_config_names(const struct pg_xf_config *cfg, struct pg_xf_names *out);

/**
 * Transform one BI guest check of location loc_ref. dims (may be NULL) carries dimension names:
 * {"menuItems": {"<miNum>": "name"}, "tenderMedia": {...}, "discounts": {...},
 * "serviceCharges": {...}}. PG_EINVAL with a reason for an unconfigured location or a malformed
 * check (missing guestCheckId, an amount with more decimals than the currency, a line without
 * a type); PG_ENOMEM. check and dims are borrowed; *out is new (json_decref), NULL on failure.
 */
int pg_xf_check(const struct pg_xf_config *cfg,
                const json_t *check,
                const char *loc_ref,
                const json_t *dims,
                json_t **out,
                char *why,
                size_t whysz) PG_WARN_UNUSED;

#endif
