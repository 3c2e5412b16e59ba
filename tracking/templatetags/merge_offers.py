"""`{% merge_offers contact %}`: on a contact's page, the other contacts the same browser
identified as, each with a link to the merge review (tracking.selectors.merge_suggestions)."""

from django import template

from tracking.selectors import merge_suggestions

register = template.Library()


@register.inclusion_tag("tracking/_merge_offers.html", takes_context=True)
def merge_offers(context, contact):
    return {"contact": contact, "suggestions": merge_suggestions(context["request"].user, contact)}
