-- only the fetches that ended (ARGV[2])
return 1
