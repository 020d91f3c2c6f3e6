"""cosell keeps Microsoft Partner Center co-sell referrals and Salesforce in sync, both ways."""

__version__ = "0.1.0"
