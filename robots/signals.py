from django.dispatch import Signal

# "A robot was produced", with the new Robot as `robot`. Sent inside the transaction that
# saves the robot, however it is saved (API, admin, shell): a listener's writes commit or
# roll back with it. The robot's catalog Version row is locked by then (PostgreSQL: FOR SHARE
# or stronger, taken before the robot was inserted), so whoever locks that version FOR
# UPDATE either finished before, and a listener's next query sees its work, or waits until
# this transaction ends, and then sees the robot. robots knows nothing of who listens.
robot_produced = Signal()
