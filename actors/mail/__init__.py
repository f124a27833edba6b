"""Mail, in one place: rendering (render), sending over SMTP or into the local mailbox
(transport), and the local mailbox itself (mailbox), which the ops pages read in embedded mode.

The email queue's actors (actors/email.py) and the low-stock notice (actors/orders.py) use it.
"""
