from fleetward.cli import main

main()
